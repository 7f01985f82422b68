// libaio for Swift. Debian's libaio-dev ships no pkg-config file, so the module links "aio" by name.
#ifndef UMSD_CLIBAIO_SHIM_H
#define UMSD_CLIBAIO_SHIM_H

#include <libaio.h>
#include <stdint.h>

/// Prepares a read or write on `fd` whose completion carries `tag` back and is signalled on `eventfd` (none when
/// `eventfd` is negative: the completion then waits in the ring for the next reap).
static inline void umsd_iocb_prepare(struct iocb *iocb, int fd, int is_write, void *buf, size_t count,
                                     long long offset, int eventfd, uint64_t tag) {
    if (is_write) {
        io_prep_pwrite(iocb, fd, buf, count, offset);
    } else {
        io_prep_pread(iocb, fd, buf, count, offset);
    }
    if (eventfd >= 0) {
        io_set_eventfd(iocb, eventfd);
    }
    iocb->data = (void *)(uintptr_t)tag;
}

/// Prepares a gathering write of `count` iovecs on `fd` (one USB request for all of them), otherwise as
/// `umsd_iocb_prepare`. The iovec array is read during io_submit only.
static inline void umsd_iocb_prepare_writev(struct iocb *iocb, int fd, const struct iovec *iov, int count,
                                            int eventfd, uint64_t tag) {
    io_prep_pwritev(iocb, fd, iov, count, 0);
    if (eventfd >= 0) {
        io_set_eventfd(iocb, eventfd);
    }
    iocb->data = (void *)(uintptr_t)tag;
}

/// Prepares an fdatasync of `fd` (IOCB_CMD_FDSYNC, Linux 4.18+): the kernel runs it from a workqueue and
/// reports it like any other completion, so the caller never blocks on the disk.
static inline void umsd_iocb_prepare_fdsync(struct iocb *iocb, int fd, int eventfd, uint64_t tag) {
    io_prep_fdsync(iocb, fd);
    if (eventfd >= 0) {
        io_set_eventfd(iocb, eventfd);
    }
    iocb->data = (void *)(uintptr_t)tag;
}

/// The tag given to `umsd_iocb_prepare`, from a completion event.
static inline uint64_t umsd_io_event_tag(const struct io_event *event) {
    return (uint64_t)(uintptr_t)event->data;
}

/// The completion result: bytes transferred, or a negative errno.
static inline long umsd_io_event_result(const struct io_event *event) {
    return (long)event->res;
}

/// The head of the completion ring the kernel maps for every AIO context (fs/aio.c, `struct aio_ring`): the
/// io_context_t handle is its address. Completions can be read from it without a system call.
struct umsd_aio_ring {
    unsigned id;
    unsigned nr;
    unsigned head;
    unsigned tail;
    unsigned magic;
    unsigned compat_features;
    unsigned incompat_features;
    unsigned header_length;
    struct io_event io_events[];
};

#define UMSD_AIO_RING_MAGIC 0xa10a10a1u

/// Copies up to `max` completions into `events` and returns how many, without waiting. Reads the ring in user
/// space (as fio's userspace_reap) when its layout is the one known here, else asks io_getevents. The kernel
/// publishes an event before it moves `tail` (write barrier), and takes back the slots up to `head` when it
/// next needs them, so an acquire load of `tail` and a release store of `head` are all the ordering needed.
/// Only one thread may reap a context.
static inline int umsd_io_reap(io_context_t context, struct io_event *events, int max) {
    struct umsd_aio_ring *ring = (struct umsd_aio_ring *)context;
    if (ring == 0 || ring->magic != UMSD_AIO_RING_MAGIC || ring->incompat_features != 0) {
        struct timespec zero = {0, 0};
        return io_getevents(context, 0, max, events, &zero);
    }
    unsigned head = ring->head;
    unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
    unsigned nr = ring->nr;
    int count = 0;
    while (head != tail && count < max) {
        events[count++] = ring->io_events[head];
        head = head + 1 == nr ? 0 : head + 1;
    }
    __atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
    return count;
}

#endif
