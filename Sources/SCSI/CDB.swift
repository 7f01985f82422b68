/// Big-endian field access to a CDB; reads past the end give nil, so a short CDB can never trap.
public struct CDB: Sendable, Equatable {
    /// Up to 16 bytes live inline, so a command's CDB costs no heap allocation; longer byte strings (parameter
    /// lists read with the same accessors) go to `long`.
    private var inline: (UInt64, UInt64) = (0, 0)
    private var long: [UInt8]?
    public let count: Int

    public init(_ bytes: some Collection<UInt8>) {
        count = bytes.count
        if count > 16 {
            long = Array(bytes)
        } else {
            // count <= 16 here: every index fits the 16 inline bytes.
            withUnsafeMutableBytes(of: &inline) { raw in
                for (index, byte) in bytes.enumerated() { raw[index] = byte }
            }
        }
    }

    /// From a buffer, without runtime generics: how the I/O layer builds each command's CDB.
    public init(_ raw: UnsafeRawBufferPointer) {
        count = raw.count
        if count > 16 {
            long = Array(raw)
        } else {
            let length = count
            // length <= 16 here, the size of `inline`, and it is raw.count.
            withUnsafeMutableBytes(of: &inline) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<length])) }
        }
    }

    public static func == (a: CDB, b: CDB) -> Bool { a.bytes == b.bytes }

    /// The bytes as an array (allocates: for diagnostics and tests).
    public var bytes: [UInt8] { long ?? withUnsafeBytes(of: inline) { Array($0.prefix(count)) } }

    public var opcode: UInt8 { self[0] ?? 0 }

    public subscript(_ index: Int) -> UInt8? {
        guard index >= 0, index < count else { return nil }
        if let long { return long[index] }
        // index < count <= 16, checked above.
        return withUnsafeBytes(of: inline) { $0[index] }
    }

    public func be16(_ offset: Int) -> UInt16? { field(offset, 2).map { UInt16($0) } }
    public func be24(_ offset: Int) -> UInt32? { field(offset, 3).map { UInt32($0) } }
    public func be32(_ offset: Int) -> UInt32? { field(offset, 4).map { UInt32($0) } }
    public func be64(_ offset: Int) -> UInt64? { field(offset, 8) }

    private func field(_ offset: Int, _ size: Int) -> UInt64? {
        guard offset >= 0, offset + size <= count else { return nil }
        var value: UInt64 = 0
        for index in offset..<offset + size { value = value << 8 | UInt64(self[index]!) }
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
