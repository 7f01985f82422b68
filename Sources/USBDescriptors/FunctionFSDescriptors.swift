/// The interface a mass-storage function offers: class 08 (mass storage), subclass 06 (SCSI transparent command
/// set), protocol 50 (Bulk-Only Transport), one bulk IN and one bulk OUT endpoint.
public struct BulkOnlyInterface: Sendable, Equatable {
    /// Index of the interface string in the strings blob (1-based; 0 = none).
    public var interfaceString: UInt8 = 1
    /// SuperSpeed burst size; f_mass_storage uses 15, the maximum.
    public var superSpeedMaxBurst: UInt8 = 15

    public init(interfaceString: UInt8 = 1, superSpeedMaxBurst: UInt8 = 15) {
        self.interfaceString = interfaceString
        self.superSpeedMaxBurst = superSpeedMaxBurst
    }

    /// FunctionFS numbers endpoint files in descriptor order: ep1 is bulk IN, ep2 is bulk OUT.
    public static let inEndpointAddress: UInt8 = 0x81
    /// See `inEndpointAddress`.
    public static let outEndpointAddress: UInt8 = 0x02

    /// The FunctionFS v2 descriptors blob (`FUNCTIONFS_DESCRIPTORS_MAGIC_V2`) with full-, high- and SuperSpeed sets,
    /// written to ep0 before the strings.
    /// `eventFD`: an eventfd that f_fs signals for every ep0 event (FUNCTIONFS_EVENTFD), and for every AIO
    /// completion that carries no eventfd of its own.
    public func functionFSDescriptors(eventFD: Int32? = nil) -> [UInt8] {
        var fullSpeed = ByteWriter()
        interface(&fullSpeed)
        endpoint(&fullSpeed, address: Self.inEndpointAddress, maxPacketSize: 64)
        endpoint(&fullSpeed, address: Self.outEndpointAddress, maxPacketSize: 64)

        var highSpeed = ByteWriter()
        interface(&highSpeed)
        endpoint(&highSpeed, address: Self.inEndpointAddress, maxPacketSize: 512)
        endpoint(&highSpeed, address: Self.outEndpointAddress, maxPacketSize: 512)

        var superSpeed = ByteWriter()
        interface(&superSpeed)
        endpoint(&superSpeed, address: Self.inEndpointAddress, maxPacketSize: 1024)
        companion(&superSpeed)
        endpoint(&superSpeed, address: Self.outEndpointAddress, maxPacketSize: 1024)
        companion(&superSpeed)

        var blob = ByteWriter()
        blob.le32(FunctionFSMagic.descriptorsV2)
        blob.le32(0)  // total length, patched below
        blob.le32(
            FunctionFSFlags.hasFullSpeed | FunctionFSFlags.hasHighSpeed | FunctionFSFlags.hasSuperSpeed
                | (eventFD == nil ? 0 : FunctionFSFlags.eventFD))
        if let eventFD { blob.le32(UInt32(bitPattern: eventFD)) }
        blob.le32(3)
        blob.le32(3)
        blob.le32(5)
        blob.append(fullSpeed.bytes)
        blob.append(highSpeed.bytes)
        blob.append(superSpeed.bytes)
        blob.patchLE32(at: 4, UInt32(blob.bytes.count))
        return blob.bytes
    }

    private func interface(_ writer: inout ByteWriter) {
        writer.u8(9)  // bLength
        writer.u8(DescriptorType.interface)
        writer.u8(0)  // bInterfaceNumber: FunctionFS renumbers it within the configuration
        writer.u8(0)  // bAlternateSetting: no UAS alternate, so hosts stay on BOT
        writer.u8(2)  // bNumEndpoints
        writer.u8(0x08)  // mass storage
        writer.u8(0x06)  // SCSI transparent command set
        writer.u8(0x50)  // Bulk-Only Transport
        writer.u8(interfaceString)
    }

    private func endpoint(_ writer: inout ByteWriter, address: UInt8, maxPacketSize: UInt16) {
        writer.u8(7)  // bLength: FunctionFS wants the 7-byte form without the audio fields
        writer.u8(DescriptorType.endpoint)
        writer.u8(address)
        writer.u8(0x02)  // bulk
        writer.le16(maxPacketSize)
        writer.u8(0)  // bInterval
    }

    private func companion(_ writer: inout ByteWriter) {
        writer.u8(6)
        writer.u8(DescriptorType.superSpeedEndpointCompanion)
        writer.u8(superSpeedMaxBurst)
        writer.u8(0)  // bmAttributes: no streams
        writer.le16(0)  // wBytesPerInterval: periodic endpoints only
    }
}

/// The FunctionFS strings blob (`FUNCTIONFS_STRINGS_MAGIC`) for US English.
public func functionFSStrings(_ strings: [String]) -> [UInt8] {
    var blob = ByteWriter()
    blob.le32(FunctionFSMagic.strings)
    blob.le32(0)
    blob.le32(UInt32(strings.count))
    blob.le32(strings.isEmpty ? 0 : 1)
    if !strings.isEmpty {
        blob.le16(0x0409)
        for string in strings {
            blob.append(Array(string.utf8))
            blob.u8(0)
        }
    }
    blob.patchLE32(at: 4, UInt32(blob.bytes.count))
    return blob.bytes
}

enum FunctionFSMagic {
    static let strings: UInt32 = 2
    static let descriptorsV2: UInt32 = 3
}

enum FunctionFSFlags {
    static let hasFullSpeed: UInt32 = 1
    static let hasHighSpeed: UInt32 = 2
    static let hasSuperSpeed: UInt32 = 4
    static let eventFD: UInt32 = 32
}

enum DescriptorType {
    static let interface: UInt8 = 4
    static let endpoint: UInt8 = 5
    static let superSpeedEndpointCompanion: UInt8 = 0x30
}
