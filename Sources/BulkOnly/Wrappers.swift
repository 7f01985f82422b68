/// A Command Block Wrapper (BOT 1.0 §5.1): 31 bytes, little-endian, signature "USBC".
public struct CBW: Sendable, Equatable {
    public static let size = 31
    public static let signature: UInt32 = 0x4342_5355

    public var tag: UInt32
    public var dataTransferLength: UInt32
    /// bmCBWFlags; bit 7 set means data-in (device to host), bits 6..0 are reserved.
    public var flags: UInt8
    /// bCBWLUN as received: bits 3..0 are the LUN, bits 7..4 reserved.
    public var lunField: UInt8
    /// bCBWCBLength as received: bits 4..0 are the length, bits 7..5 reserved.
    public var commandBlockLengthField: UInt8
    /// CBWCB: always 16 bytes, held inline (no heap allocation per command); only the first `commandBlockLength`
    /// are meaningful.
    public var commandBlock: CommandBlockBytes

    public init(
        tag: UInt32, dataTransferLength: UInt32, flags: UInt8, lun: UInt8, commandBlock: [UInt8],
        commandBlockLength: UInt8? = nil
    ) {
        self.tag = tag
        self.dataTransferLength = dataTransferLength
        self.flags = flags
        self.lunField = lun
        self.commandBlockLengthField = commandBlockLength ?? UInt8(commandBlock.count)
        self.commandBlock = CommandBlockBytes(commandBlock.prefix(16), count: 16)
    }

    /// Decodes a CBW that is *valid* in the BOT sense (§6.2.1): exactly 31 bytes with the right signature.
    /// Returns nil for anything else; whether it is also *meaningful* is `CBW.meaningfulness(maxLUN:)`.
    /// Not generic, so the I/O layer's call decodes straight from its transfer buffer without runtime generics.
    public init?(_ raw: UnsafeRawBufferPointer) {
        guard raw.count == Self.size else { return nil }
        // Every offset read below lies inside the 31 bytes just checked; loadUnaligned needs no alignment.
        func le32(_ offset: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        guard le32(0) == Self.signature else { return nil }
        tag = le32(4)
        dataTransferLength = le32(8)
        flags = raw[12]
        lunField = raw[13]
        commandBlockLengthField = raw[14]
        commandBlock = CommandBlockBytes(UnsafeRawBufferPointer(rebasing: raw[15..<31]))
    }

    /// As `init?(_: UnsafeRawBufferPointer)`, from any bytes.
    public init?(_ bytes: some Collection<UInt8>) {
        guard let cbw = Array(bytes).withUnsafeBytes({ CBW($0) }) else { return nil }
        self = cbw
    }

    /// The wire bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        putLE32(&out, Self.signature)
        putLE32(&out, tag)
        putLE32(&out, dataTransferLength)
        out.append(flags)
        out.append(lunField)
        out.append(commandBlockLengthField)
        out.append(contentsOf: commandBlock)
        return out
    }

    public var lun: UInt8 { lunField & 0x0F }
    public var commandBlockLength: Int { Int(commandBlockLengthField & 0x1F) }
    public var isDataIn: Bool { flags & 0x80 != 0 }

    /// The CDB bytes the host says it sent.
    public var cdb: CommandBlockBytes { commandBlock.prefix(length: commandBlockLength) }

    /// What the host expects from the data phase.
    /// On a 32-bit target a length of 2 GiB or more has no `Int`: `meaninglessness` refuses such a CBW, and here it
    /// saturates rather than traps.
    public var hostExpectation: DataPhase {
        if dataTransferLength == 0 { return .none }
        let length = Int(exactly: dataTransferLength) ?? Int.max
        return isDataIn ? .toHost(length) : .fromHost(length)
    }

    /// Why a valid CBW is not meaningful (BOT 1.0 §6.2.2), or nil when it is.
    public func meaninglessness(maxLUN: UInt8) -> CBWDefect? {
        if flags & 0x7F != 0 { return .reservedFlagBits }
        if lunField & 0xF0 != 0 { return .reservedLUNBits }
        if lun > maxLUN { return .unsupportedLUN }
        if commandBlockLengthField & 0xE0 != 0 { return .reservedLengthBits }
        if !(1...16).contains(commandBlockLength) { return .badCommandBlockLength }
        if Int(exactly: dataTransferLength) == nil { return .lengthBeyondAddressSpace }
        return nil
    }
}

/// Up to 16 bytes of a command block, held inline: copying one allocates nothing.
public struct CommandBlockBytes: RandomAccessCollection, Sendable, Equatable {
    private var storage: (UInt64, UInt64) = (0, 0)
    public private(set) var count: Int

    /// The first `count` (at most 16) bytes of `bytes`, zero-filled when there are fewer.
    public init(_ bytes: some Sequence<UInt8>, count: Int) {
        self.count = Swift.min(Swift.max(count, 0), 16)
        let limit = self.count
        // At most 16 indices into the 16 bytes of `storage`.
        withUnsafeMutableBytes(of: &storage) { raw in
            for (index, byte) in zip(0..<limit, bytes) { raw[index] = byte }
        }
    }

    /// All of `raw`, at most 16 bytes.
    public init(_ raw: UnsafeRawBufferPointer) {
        count = Swift.min(raw.count, 16)
        let limit = count
        // `limit` is at most 16, the size of `storage`, and at most raw.count.
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<limit])) }
    }

    /// Calls `body` with the `count` bytes.
    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        // `count` is at most 16, the size of `storage`; the pointer does not outlive the call.
        try Swift.withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(_ index: Int) -> UInt8 {
        precondition(index >= 0 && index < count, "command block index out of range")
        // Bounds checked just above.
        return Swift.withUnsafeBytes(of: storage) { $0[index] }
    }

    public static func == (a: CommandBlockBytes, b: CommandBlockBytes) -> Bool { a.elementsEqual(b) }

    /// The first `length` bytes (at most `count`).
    public func prefix(length: Int) -> CommandBlockBytes {
        var copy = self
        copy.count = Swift.min(Swift.max(length, 0), count)
        return copy
    }
}

/// Why a CBW was refused.
public enum CBWDefect: String, Sendable, Equatable {
    case notAfterCSW = "sent before the previous command's CSW"
    case wrongLength = "not 31 bytes"
    case badSignature = "bad signature"
    case reservedFlagBits = "reserved flag bits set"
    case reservedLUNBits = "reserved LUN bits set"
    case unsupportedLUN = "LUN not supported"
    case reservedLengthBits = "reserved CB length bits set"
    case badCommandBlockLength = "CB length not 1..16"
    /// Only on a 32-bit target: a transfer of 2 GiB or more, which no host sends to a USB drive.
    case lengthBeyondAddressSpace = "transfer length beyond this system's address space"
}

/// bCSWStatus (BOT 1.0 §5.2).
public enum CSWStatus: UInt8, Sendable, Equatable {
    case passed = 0
    case failed = 1
    case phaseError = 2
}

/// A Command Status Wrapper (BOT 1.0 §5.2): 13 bytes, signature "USBS".
public struct CSW: Sendable, Equatable {
    public static let size = 13
    public static let signature: UInt32 = 0x5342_5355

    public var tag: UInt32
    public var dataResidue: UInt32
    public var status: CSWStatus

    public init(tag: UInt32, dataResidue: UInt32, status: CSWStatus) {
        self.tag = tag
        self.dataResidue = dataResidue
        self.status = status
    }

    /// Decodes 13 bytes with the right signature and a defined status; nil otherwise (used by host-side tests).
    public init?(_ bytes: some Collection<UInt8>) {
        let b = Array(bytes)
        guard b.count == Self.size, le32(b, 0) == Self.signature, let status = CSWStatus(rawValue: b[12]) else {
            return nil
        }
        tag = le32(b, 4)
        dataResidue = le32(b, 8)
        self.status = status
    }

    /// Writes the 13 wire bytes through `write(offset, byte)`, so the I/O layer can fill a pinned buffer in place.
    public func encode(into write: (Int, UInt8) -> Void) {
        let words = [Self.signature, tag, dataResidue]
        for (w, word) in words.enumerated() {
            for i in 0..<4 { write(w * 4 + i, UInt8(truncatingIfNeeded: word >> UInt32(8 * i))) }
        }
        write(12, status.rawValue)
    }

    /// The wire bytes.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        encode { out[$0] = $1 }
        return out
    }
}

private func le32(_ b: [UInt8], _ offset: Int) -> UInt32 {
    UInt32(b[offset]) | UInt32(b[offset + 1]) << 8 | UInt32(b[offset + 2]) << 16 | UInt32(b[offset + 3]) << 24
}

private func putLE32(_ out: inout [UInt8], _ value: UInt32) {
    for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: value >> UInt32(8 * i))) }
}
