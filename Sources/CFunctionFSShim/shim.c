#define _GNU_SOURCE
#include "CFunctionFSShim.h"

#include <linux/usb/functionfs.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <asm/byteorder.h>
#include <errno.h>
#include <sched.h>
#include <linux/usb/ch9.h>
#include <sys/socket.h>

// The Swift side decodes events byte by byte from this layout: 8-byte setup packet, type, 3 pad bytes.
_Static_assert(sizeof(struct usb_functionfs_event) == 12, "usb_functionfs_event layout changed");
_Static_assert(sizeof(struct usb_ctrlrequest) == 8, "usb_ctrlrequest layout changed");

const unsigned long umsd_functionfs_fifo_status = FUNCTIONFS_FIFO_STATUS;
const unsigned long umsd_functionfs_fifo_flush = FUNCTIONFS_FIFO_FLUSH;
const unsigned long umsd_functionfs_clear_halt = FUNCTIONFS_CLEAR_HALT;
const unsigned long umsd_functionfs_event_size = sizeof(struct usb_functionfs_event);

int umsd_functionfs_endpoint_max_packet_size(int fd) {
    struct usb_endpoint_descriptor descriptor;
    int result = ioctl(fd, FUNCTIONFS_ENDPOINT_DESC, &descriptor);
    if (result < 0) {
        return -1;
    }
    return __le16_to_cpu(descriptor.wMaxPacketSize) & 0x7FF;
}

int umsd_punch_hole(int fd, long long offset, long long length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
}

int umsd_pin_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

int umsd_current_cpu(void) {
    return sched_getcpu();
}

int umsd_accept_nonblocking(int fd) {
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int umsd_peer_uid(int fd, unsigned int *uid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *uid = credentials.uid;
    return 0;
}
