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
#include <sys/mman.h>
#include <signal.h>
#include <unistd.h>

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

static int umsd_guard_main(void *argument) {
    int fd = (int)(long)argument;
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    // The guard shares umsd's memory, not its descriptors: it holds no image, endpoint or socket open.
    if (fd > 0) close_range(0, (unsigned int)fd - 1, 0);
    close_range((unsigned int)fd + 1, ~0U, 0);
    char byte;
    while (read(fd, &byte, 1) > 0) {
    }
    // umsd is gone. What f_fs completes now for it runs with the guard holding the address space.
    sleep(2);
    _exit(0);
}

int umsd_start_address_space_guard(void) {
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) return -1;
    const size_t size = 64 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        close(ends[0]);
        close(ends[1]);
        return -1;
    }
    // No exit signal: nobody waits for the guard; after umsd it belongs to init, which reaps it.
    int pid = clone(umsd_guard_main, (char *)stack + size, CLONE_VM, (void *)(long)ends[0]);
    int saved = errno;
    close(ends[0]);
    if (pid < 0) {
        close(ends[1]);
        errno = saved;
        return -1;
    }
    // ends[1] stays open (close-on-exec) for umsd's whole life; the kernel closes it when umsd dies.
    return pid;
}
