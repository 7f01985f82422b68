/// A range of blocks on a LUN's medium, in bytes as the backing file sees it.
public struct BlockRange: Sendable, Equatable {
    public var lba: UInt64
    public var blocks: UInt64
    public var blockSize: Int

    public init(lba: UInt64, blocks: UInt64, blockSize: Int) {
        self.lba = lba
        self.blocks = blocks
        self.blockSize = blockSize
    }

    public var byteOffset: UInt64 { lba * UInt64(blockSize) }
    public var byteCount: UInt64 { blocks * UInt64(blockSize) }
}

/// What the target answers to one CDB.
public enum Reply: Sendable, Equatable {
    /// GOOD status, no data.
    case good
    /// GOOD status after sending these bytes (already cut to the allocation length).
    case data([UInt8])
    /// Send these blocks of the medium; GOOD unless the backing file fails (`Target.readFailed`).
    case read(BlockRange)
    /// Receive these blocks into the medium; GOOD unless the backing file fails (`Target.writeFailed`).
    /// `forceUnitAccess`: durable before the status.
    case write(BlockRange, forceUnitAccess: Bool)
    /// CHECK CONDITION; the sense is kept for REQUEST SENSE.
    case checkCondition(Sense)

    /// The data phase the device intends, for the Bulk-Only case resolution.
    public var dataLength: (toHost: UInt64, fromHost: UInt64) {
        switch self {
        case .good, .checkCondition: (0, 0)
        case .data(let bytes): (UInt64(bytes.count), 0)
        case .read(let range): (range.byteCount, 0)
        case .write(let range, _): (0, range.byteCount)
        }
    }
}
