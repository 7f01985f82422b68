// What Swift cannot import from <linux/usb/functionfs.h>: the ioctl numbers are function-like macros.
#ifndef UMSD_CFUNCTIONFS_SHIM_H
#define UMSD_CFUNCTIONFS_SHIM_H

// Linux event-loop headers Glibc's Swift module map does not cover.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/mount.h>
#include <sys/file.h>
#include <signal.h>
#include <sys/vfs.h>

/// FUNCTIONFS_FIFO_STATUS: bytes still unclaimed in an endpoint FIFO.
extern const unsigned long umsd_functionfs_fifo_status;
/// FUNCTIONFS_FIFO_FLUSH: discard what is unclaimed in an endpoint FIFO.
extern const unsigned long umsd_functionfs_fifo_flush;
/// FUNCTIONFS_CLEAR_HALT: clear an endpoint halt from the device side.
extern const unsigned long umsd_functionfs_clear_halt;

/// Size of `struct usb_functionfs_event` as the kernel writes it to ep0.
extern const unsigned long umsd_functionfs_event_size;

/// FUNCTIONFS_ENDPOINT_DESC: the endpoint descriptor in use for the current speed (0 on success, -1 + errno).
int umsd_functionfs_endpoint_max_packet_size(int fd);

/// fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): glibc declares fallocate only under _GNU_SOURCE.
int umsd_punch_hole(int fd, long long offset, long long length);

/// Pins the calling thread (and the threads it creates from then on) to one CPU: sched_setaffinity with a
/// CPU_SET, which are macros. 0 on success, -1 + errno (EINVAL for a CPU that does not exist or is offline).
int umsd_pin_thread(int cpu);

/// sched_getcpu(): the CPU the calling thread runs on now, or -1 + errno.
int umsd_current_cpu(void);

/// accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), declared by glibc only under _GNU_SOURCE: a client socket
/// that never blocks the thread reading it. The socket, or -1 + errno.
int umsd_accept_nonblocking(int fd);

/// getsockopt(SO_PEERCRED) (struct ucred is _GNU_SOURCE too): the user id of a Unix socket's peer in *uid.
/// 0 on success, -1 + errno.
int umsd_peer_uid(int fd, unsigned int *uid);

/// Starts a guard: a process that shares umsd's address space (clone with CLONE_VM, nothing else shared, every
/// signal blocked) and does nothing but outlive umsd by a moment. If umsd dies with AIO reads still queued on
/// FunctionFS (SIGKILL mid-write), f_fs's completion worker would otherwise drop the last user reference of the
/// address space and wait, inside its own ordered workqueue, for the very completions queued behind it
/// (exit_aio): a deadlock that keeps the image locked and the gadget unremovable until a reboot. With the guard
/// alive the last reference is the guard's, dropped from a process. The guard closes every descriptor but a pipe
/// whose other end only umsd holds, and exits 2 s after it reads end of file. Its pid, or -1 + errno.
int umsd_start_address_space_guard(void);

#endif
