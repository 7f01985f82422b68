/// SCSI sense: a key with its additional sense code and qualifier (SPC-4 §4.5), plus the optional INFORMATION field.
public struct Sense: Sendable, Equatable, CustomStringConvertible {
    public var key: UInt8
    public var asc: UInt8
    public var ascq: UInt8
    /// The INFORMATION field (for medium errors: the failing LBA); nil leaves the VALID bit clear.
    public var information: UInt32?

    public init(key: UInt8, asc: UInt8, ascq: UInt8, information: UInt32? = nil) {
        self.key = key
        self.asc = asc
        self.ascq = ascq
        self.information = information
    }

    public var description: String {
        let hex = { (v: UInt8) in String(v, radix: 16, uppercase: true).leftPadded(2) }
        return "\(hex(key))/\(hex(asc))/\(hex(ascq))"
    }

    /// Fixed-format sense data (SPC-4 §4.5.3), 18 bytes.
    public var fixedFormat: [UInt8] {
        var out = [UInt8](repeating: 0, count: 18)
        out[0] = information == nil ? 0x70 : 0xF0
        out[2] = key & 0x0F
        if let information {
            out[3] = UInt8(truncatingIfNeeded: information >> 24)
            out[4] = UInt8(truncatingIfNeeded: information >> 16)
            out[5] = UInt8(truncatingIfNeeded: information >> 8)
            out[6] = UInt8(truncatingIfNeeded: information)
        }
        out[7] = 10  // additional sense length: bytes 8...17
        out[12] = asc
        out[13] = ascq
        return out
    }

    public static let noSense = Sense(key: 0x0, asc: 0x00, ascq: 0x00)
    public static let mediumNotPresent = Sense(key: 0x2, asc: 0x3A, ascq: 0x00)
    public static let mediumNotPresentTrayClosed = Sense(key: 0x2, asc: 0x3A, ascq: 0x01)
    public static let mediumNotPresentTrayOpen = Sense(key: 0x2, asc: 0x3A, ascq: 0x02)
    public static let parameterListLengthError = Sense(key: 0x5, asc: 0x1A, ascq: 0x00)
    public static let invalidFieldInParameterList = Sense(key: 0x5, asc: 0x26, ascq: 0x00)
    public static let cannotReadMediumIncompatibleFormat = Sense(key: 0x5, asc: 0x30, ascq: 0x02)
    public static let illegalModeForThisTrack = Sense(key: 0x5, asc: 0x64, ascq: 0x00)
    public static let miscompareDuringVerify = Sense(key: 0xE, asc: 0x1D, ascq: 0x00)
    public static let invalidCommandOperationCode = Sense(key: 0x5, asc: 0x20, ascq: 0x00)
    public static let lbaOutOfRange = Sense(key: 0x5, asc: 0x21, ascq: 0x00)
    public static let invalidFieldInCDB = Sense(key: 0x5, asc: 0x24, ascq: 0x00)
    public static let savingParametersNotSupported = Sense(key: 0x5, asc: 0x39, ascq: 0x00)
    public static let mediumRemovalPrevented = Sense(key: 0x5, asc: 0x53, ascq: 0x02)
    public static let mediumRemovalPreventedNotReady = Sense(key: 0x2, asc: 0x53, ascq: 0x02)
    public static let mediumChangedRemoved = Sense(key: 0x6, asc: 0x3A, ascq: 0x00)
    public static let notReadyToReadyChange = Sense(key: 0x6, asc: 0x28, ascq: 0x00)
    public static let powerOnReset = Sense(key: 0x6, asc: 0x29, ascq: 0x00)
    public static let writeProtected = Sense(key: 0x7, asc: 0x27, ascq: 0x00)

    /// Descriptor-format sense data (SPC-4 §4.5.2): 8-byte header, and an information descriptor when set.
    public var descriptorFormat: [UInt8] {
        var out: [UInt8] = [0x72, key & 0x0F, asc, ascq, 0, 0, 0, 0]
        if let information {
            out += [0x00, 0x0A, 0x80, 0x00, 0, 0, 0, 0]
            for shift in [24, 16, 8, 0] { out.append(UInt8(truncatingIfNeeded: information >> UInt32(shift))) }
        }
        out[7] = UInt8(out.count - 8)
        return out
    }

    /// Unrecovered read error at `lba` (the backing file failed).
    public static func unrecoveredReadError(lba: UInt64) -> Sense {
        Sense(key: 0x3, asc: 0x11, ascq: 0x00, information: UInt32(truncatingIfNeeded: lba))
    }

    /// Write error at `lba` (the backing file failed, e.g. the disk under the image is full).
    public static func writeError(lba: UInt64) -> Sense {
        Sense(key: 0x3, asc: 0x0C, ascq: 0x00, information: UInt32(truncatingIfNeeded: lba))
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
