// libaio for Swift. Debian's libaio-dev ships no pkg-config file, so the module links "aio" by name.
#ifndef UMSD_CLIBAIO_SHIM_H
#define UMSD_CLIBAIO_SHIM_H

#include <libaio.h>
#include <stdint.h>

/// Prepares a read or write on `fd` whose completion is signalled on `eventfd` and carries `tag` back.
static inline void umsd_iocb_prepare(struct iocb *iocb, int fd, int is_write, void *buf, size_t count,
                                     long long offset, int eventfd, uint64_t tag) {
    if (is_write) {
        io_prep_pwrite(iocb, fd, buf, count, offset);
    } else {
        io_prep_pread(iocb, fd, buf, count, offset);
    }
    io_set_eventfd(iocb, eventfd);
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

#endif
