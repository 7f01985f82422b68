/// READ TOC/PMA/ATIP (MMC-6 §6.33) for a single-session disc with one data track: formats 0 (TOC), 1 (session
/// information) and 2 (full TOC), in LBA and MSF, including the SFF-8020i forms with the format in byte 9.
extension Target {
    func readTOC(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let msf = (cdb[1] ?? 0) & 0x02 != 0
        var format = (cdb[2] ?? 0) & 0x0F
        // SFF-8020i put the format in byte 9 bits 7-6; Linux (CDROMMULTISESSION), macOS and Windows 9x still use it.
        if format == 0 {
            switch (cdb[9] ?? 0) >> 6 {
            case 1: format = 1
            case 2: format = 2
            default: break
            }
        }
        let track = cdb[6] ?? 0
        let allocation = Int(cdb.be16(7) ?? 0)
        let leadOut = unit.blockCount

        var w = BigEndianWriter()
        switch format {
        case 0:
            // Start track 0 or 1 lists track 1 and the lead-out; 0xAA lists the lead-out alone.
            guard track <= 1 || track == 0xAA else { return .checkCondition(.invalidFieldInCDB) }
            let descriptors = track == 0xAA ? 1 : 2
            w.be16(UInt16(2 + 8 * descriptors))
            w.u8(1)  // first track
            w.u8(1)  // last track
            if track != 0xAA {
                trackDescriptor(&w, number: 1, lba: 0, msf: msf)
            }
            trackDescriptor(&w, number: 0xAA, lba: leadOut, msf: msf)
        case 1:
            w.be16(10)
            w.u8(1)  // first session
            w.u8(1)  // last session
            trackDescriptor(&w, number: 1, lba: 0, msf: msf)
        case 2:
            guard track <= 1 else { return .checkCondition(.invalidFieldInCDB) }
            w.be16(2 + 4 * 11)
            w.u8(1)  // first session
            w.u8(1)  // last session
            // Points A0 (first track; PSEC = disc type 00, CD-ROM), A1 (last track), A2 (lead-out), then track 1.
            fullTOCDescriptor(&w, point: 0xA0, pointField: [1, 0x00, 0])
            fullTOCDescriptor(&w, point: 0xA1, pointField: [1, 0, 0])
            fullTOCDescriptor(&w, point: 0xA2, address: leadOut, msf: msf)
            fullTOCDescriptor(&w, point: 0x01, address: 0, msf: msf)
        default:
            return .checkCondition(.invalidFieldInCDB)
        }
        return truncated(w.bytes, to: allocation)
    }

    /// A format 0/1 descriptor. Control 4 with ADR 1 (0x14) marks a data track: udev's cdrom_id and Linux's open()
    /// need it to treat the disc as data, and only then does blkid look at it.
    private func trackDescriptor(_ w: inout BigEndianWriter, number: UInt8, lba: UInt64, msf: Bool) {
        w.u8(0)
        w.u8(0x14)
        w.u8(number)
        w.u8(0)
        appendAddress(&w, lba: lba, msf: msf)
    }

    private func fullTOCDescriptor(_ w: inout BigEndianWriter, point: UInt8, pointField: [UInt8]) {
        w.bytes += [1, 0x14, 0, point, 0, 0, 0, 0] + pointField
    }

    /// A full-TOC descriptor whose P-MSF is an address: MSF, or (as QEMU and VirtualBox do) a 4-byte LBA over
    /// the zero byte and P-MSF when the host asked for LBA.
    private func fullTOCDescriptor(_ w: inout BigEndianWriter, point: UInt8, address: UInt64, msf: Bool) {
        w.bytes += [1, 0x14, 0, point, 0, 0, 0]
        appendAddress(&w, lba: address, msf: msf)
    }

    /// LBA to minute/second/frame with the 2-second pregap (MMC-6 §6.33.3.3); the minute saturates at 255:59:74,
    /// which DVD-sized images exceed (hosts use LBA there).
    static func msf(lba: UInt64) -> (UInt8, UInt8, UInt8) {
        let frames = lba + 150
        let minutes = frames / (60 * 75)
        if minutes > 255 { return (255, 59, 74) }
        return (UInt8(minutes), UInt8(frames / 75 % 60), UInt8(frames % 75))
    }
}
