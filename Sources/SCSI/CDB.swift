/// Big-endian field access to a CDB; reads past the end give nil, so a short CDB can never trap.
public struct CDB: Sendable, Equatable {
    public let bytes: [UInt8]

    public init(_ bytes: some Collection<UInt8>) { self.bytes = Array(bytes) }

    public var opcode: UInt8 { bytes.first ?? 0 }
    public var count: Int { bytes.count }

    public subscript(_ index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }

    public func be16(_ offset: Int) -> UInt16? { field(offset, 2).map { UInt16($0) } }
    public func be24(_ offset: Int) -> UInt32? { field(offset, 3).map { UInt32($0) } }
    public func be32(_ offset: Int) -> UInt32? { field(offset, 4).map { UInt32($0) } }
    public func be64(_ offset: Int) -> UInt64? { field(offset, 8) }

    private func field(_ offset: Int, _ size: Int) -> UInt64? {
        guard offset >= 0, offset + size <= bytes.count else { return nil }
        var value: UInt64 = 0
        for byte in bytes[offset..<offset + size] { value = value << 8 | UInt64(byte) }
        return value
    }
}

/// Appends big-endian fields, the byte order of every SCSI data structure.
struct BigEndianWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func be16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(truncatingIfNeeded: v)] }
    mutating func be32(_ v: UInt32) {
        for shift in [24, 16, 8, 0] { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }
    mutating func zeros(_ n: Int) { bytes += repeatElement(0, count: n) }
    mutating func ascii(_ s: String, width: Int) {
        let clean = s.utf8.map { (0x20...0x7E).contains($0) ? $0 : 0x20 }.prefix(width)
        bytes += clean
        bytes += repeatElement(0x20, count: width - clean.count)
    }
}
