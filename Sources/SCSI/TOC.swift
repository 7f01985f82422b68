/// READ TOC/PMA/ATIP (MMC-6 §6.33) for a single-session disc with one data track.
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
                trackDescriptor(&w, control: 0x14, number: 1, lba: 0, msf: msf)
            }
            // 0x14: ADR 1, data track; udev's cdrom_id and Linux open() need the data bit to see a data disc.
            trackDescriptor(&w, control: 0x14, number: 0xAA, lba: leadOut, msf: msf)
        case 1:
            w.be16(10)
            w.u8(1)  // first session
            w.u8(1)  // last session
            trackDescriptor(&w, control: 0x14, number: 1, lba: 0, msf: msf)
        default:
            return .checkCondition(.invalidFieldInCDB)
        }
        return .data(Array(w.bytes.prefix(allocation)))
    }

    private func trackDescriptor(_ w: inout BigEndianWriter, control: UInt8, number: UInt8, lba: UInt64, msf: Bool) {
        w.u8(0)
        w.u8(control)
        w.u8(number)
        w.u8(0)
        if msf {
            let (m, s, f) = Self.msf(lba: lba)
            w.u8(0)
            w.u8(m)
            w.u8(s)
            w.u8(f)
        } else {
            w.be32(UInt32(clamping: lba))
        }
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
