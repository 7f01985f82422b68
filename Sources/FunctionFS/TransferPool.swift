import CLibAIO
import Glibc

/// Preallocated, page-aligned transfer buffers, each pinned together with its own iocb until the kernel reports
/// the transfer complete. Nothing is allocated per command.
public final class TransferPool {
    public let count: Int
    public let bufferSize: Int
    private let iocbs: UnsafeMutablePointer<iocb>
    private let pointers: UnsafeMutablePointer<UnsafeMutablePointer<iocb>?>
    private let memory: UnsafeMutableRawPointer
    /// Per slot: a small trailer (a CSW sent in the same request as the data) and the two iovecs that gather it.
    private let trailers: UnsafeMutableRawPointer
    private let vectors: UnsafeMutablePointer<iovec>
    public static let trailerCapacity = 64
    private var freeList: [Int]
    /// Index of the first slot; tags carry `base + index` so several pools can share one AIO context.
    public let base: Int

    public init(count: Int, bufferSize: Int, base: Int = 0) {
        self.count = count
        self.bufferSize = bufferSize
        self.base = base
        iocbs = .allocate(capacity: count)
        iocbs.initialize(repeating: iocb(), count: count)
        pointers = .allocate(capacity: count)
        pointers.initialize(repeating: nil, count: count)
        // Page alignment keeps the buffers usable for O_DIRECT image I/O as well.
        memory = UnsafeMutableRawPointer.allocate(byteCount: count * bufferSize, alignment: 4096)
        trailers = .allocate(byteCount: count * Self.trailerCapacity, alignment: 64)
        vectors = .allocate(capacity: 2 * count)
        vectors.initialize(repeating: iovec(), count: 2 * count)
        freeList = Array((0..<count).reversed())
        freeList.reserveCapacity(count)
    }

    deinit {
        iocbs.deallocate()
        pointers.deallocate()
        memory.deallocate()
        trailers.deallocate()
        vectors.deallocate()
    }

    public var freeCount: Int { freeList.count }
    public var inFlightCount: Int { count - freeList.count }

    public func contains(tag: Int) -> Bool { tag >= base && tag < base + count }

    /// Takes a free slot, or nil when all are in flight.
    public func take() -> Int? { freeList.popLast() }

    /// Returns a slot whose transfer has completed.
    public func give(_ slot: Int) { freeList.append(slot) }

    public func buffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        // The slot's region lies inside `memory`, which lives as long as the pool.
        UnsafeMutableRawBufferPointer(start: memory + slot * bufferSize, count: bufferSize)
    }

    /// Prepares slot's iocb for a transfer of `length` bytes of its buffer on `fd` and returns a pointer to
    /// hand to `AsyncIO.submit`. The iocb and buffer stay untouched until the completion is reaped.
    public func prepare(_ slot: Int, fd: Int32, write: Bool, length: Int, offset: Int64 = 0, eventFD: Int32)
        -> UnsafeMutablePointer<iocb>
    {
        let control = iocbs + slot
        umsd_iocb_prepare(
            control, fd, write ? 1 : 0, memory + slot * bufferSize, length, offset, eventFD, UInt64(base + slot))
        return control
    }

    /// Like `prepare`, with memory outside the pool. For bulk IN it may be reused once `io_submit` returns, since
    /// f_fs copies IN data during the submission; for bulk OUT it must stay valid until the completion.
    public func prepare(
        _ slot: Int, fd: Int32, write: Bool, external buffer: UnsafeMutableRawPointer, length: Int, eventFD: Int32
    ) -> UnsafeMutablePointer<iocb> {
        let control = iocbs + slot
        umsd_iocb_prepare(control, fd, write ? 1 : 0, buffer, length, 0, eventFD, UInt64(base + slot))
        return control
    }

    /// The slot's trailer area (`trailerCapacity` bytes), for `prepare(_:fd:data:length:trailerLength:eventFD:)`.
    public func trailer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        // The slot's trailer lies inside `trailers`, which lives as long as the pool.
        UnsafeMutableRawBufferPointer(start: trailers + slot * Self.trailerCapacity, count: Self.trailerCapacity)
    }

    /// Prepares one write of `length` bytes at `data` (the slot's buffer or memory outside the pool) followed by
    /// the first `trailerLength` bytes of the slot's trailer, as a single request.
    public func prepare(
        _ slot: Int, fd: Int32, data: UnsafeRawPointer, length: Int, trailerLength: Int, eventFD: Int32
    ) -> UnsafeMutablePointer<iocb> {
        precondition(trailerLength <= Self.trailerCapacity)
        let control = iocbs + slot
        let vector = vectors + 2 * slot
        // Both iovecs point at memory that outlives the submission; the kernel reads them during io_submit.
        vector[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: data), iov_len: length)
        vector[1] = iovec(iov_base: trailers + slot * Self.trailerCapacity, iov_len: trailerLength)
        umsd_iocb_prepare_writev(control, fd, vector, 2, eventFD, UInt64(base + slot))
        return control
    }

    /// Prepares slot's iocb for an fdatasync of `fd`; the slot's buffer is not used.
    public func prepareDataSync(_ slot: Int, fd: Int32, eventFD: Int32) -> UnsafeMutablePointer<iocb> {
        let control = iocbs + slot
        umsd_iocb_prepare_fdsync(control, fd, eventFD, UInt64(base + slot))
        return control
    }

    public func iocbPointer(_ slot: Int) -> UnsafeMutablePointer<iocb> { iocbs + slot }
}
