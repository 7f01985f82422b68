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

/// What READ CD returns of each sector of a data track (MMC-6 §6.21, Table 353 subsets umsd serves).
public enum CDSectorLayout: Sendable, Equatable {
    /// The 2048 user bytes (the same as READ(10)).
    case userData
    /// All 2352 bytes: sync, header, user data, EDC, zero fill, P and Q parity (synthesized).
    case raw
    /// The 4-byte header followed by the user data (2052 bytes).
    case headerAndUserData
    /// The 4-byte header alone.
    case headerOnly

    /// Bytes per sector sent to the host.
    public var bytesPerSector: Int {
        switch self {
        case .userData: 2048
        case .raw: 2352
        case .headerAndUserData: 2052
        case .headerOnly: 4
        }
    }
}

/// What the target answers to one CDB.
public enum Reply: Sendable, Equatable {
    /// GOOD status, no data.
    case good
    /// GOOD status after sending these bytes (already cut to the allocation length).
    case data([UInt8])
    /// Send these blocks of the medium; GOOD unless the backing file fails (`Target.readFailed`).
    case read(BlockRange)
    /// Send these CD sectors in the given layout (READ CD).
    case readCD(BlockRange, CDSectorLayout)
    /// Receive these blocks into the medium; GOOD unless the backing file fails (`Target.writeFailed`).
    /// `forceUnitAccess`: durable before the status.
    case write(BlockRange, forceUnitAccess: Bool)
    /// Check the blocks can be read (VERIFY with BYTCHK 0): nothing moves on the bus.
    case verifyMedium(BlockRange)
    /// Receive these blocks and compare them with the medium (VERIFY with BYTCHK 1): MISCOMPARE if they differ.
    case compare(BlockRange)
    /// Make everything written so far durable (SYNCHRONIZE CACHE): GOOD once it is.
    case synchronizeCache
    /// Receive one block and write it over the whole range, or punch the range out when `unmap`.
    case writeSame(BlockRange, unmap: Bool)
    /// Receive a parameter list of this many bytes, then hand it to `Target.receivedParameters`.
    case parameterList(Int)
    /// CHECK CONDITION; the sense is kept for REQUEST SENSE.
    case checkCondition(Sense)

    /// The data phase the device intends, for the Bulk-Only case resolution.
    public var dataLength: (toHost: UInt64, fromHost: UInt64) {
        switch self {
        case .good, .checkCondition, .verifyMedium, .synchronizeCache: (0, 0)
        case .data(let bytes): (UInt64(bytes.count), 0)
        case .read(let range): (range.byteCount, 0)
        case .readCD(let range, let layout): (range.blocks * UInt64(layout.bytesPerSector), 0)
        case .write(let range, _), .compare(let range): (0, range.byteCount)
        case .writeSame(let range, _): (0, UInt64(range.blockSize))
        case .parameterList(let length): (0, UInt64(length))
        }
    }
}

/// What a parameter list received after `Reply.parameterList` leads to.
public enum ParameterOutcome: Sendable, Equatable {
    case good
    case checkCondition(Sense)
    /// UNMAP: punch these ranges out of the backing file, then GOOD.
    case unmap([BlockRange])
}
