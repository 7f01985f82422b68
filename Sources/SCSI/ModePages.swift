/// MODE SENSE and MODE SELECT (SPC-4 §6.11-6.14) over the few pages a removable disk or optical drive has.
/// Nothing is changeable, so MODE SELECT accepts exactly the current values and refuses anything else.
extension Target {
    /// The pages of a LUN type, ascending, as page code and bytes (page code, page length, parameters).
    func modePages(_ unit: LogicalUnit, pageControl: UInt8) -> [(code: UInt8, bytes: [UInt8])] {
        let changeable = pageControl == 1
        func page(_ code: UInt8, _ parameters: [UInt8]) -> (code: UInt8, bytes: [UInt8]) {
            (code, [code, UInt8(parameters.count)] + (changeable ? Array(repeating: 0, count: parameters.count) : parameters))
        }
        // Read-Write Error Recovery (SBC-3 §6.4.9, MMC-6 §7.3): defaults, no retries to tune.
        let errorRecovery = page(0x01, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        switch unit.type {
        case .disk:
            var caching = [UInt8](repeating: 0, count: 18)
            // WCE: writes land in the page cache until SYNCHRONIZE CACHE or FUA make them durable, as
            // f_mass_storage reports too; RCD 0: reads are cached.
            caching[0] = 0x04
            var exceptions = [UInt8](repeating: 0, count: 10)
            exceptions[0] = 0x08  // DEXCPT: no informational exceptions are ever reported
            return [
                errorRecovery, page(0x08, caching),
                page(0x1A, [UInt8](repeating: 0, count: 10)),  // Power Condition: no timers
                page(0x1C, exceptions),
            ]
        case .cdrom:
            return [errorRecovery, page(0x2A, capabilitiesParameters(unit))]
        }
    }

    /// CD/DVD Capabilities and Mechanical Status parameters (MMC-6 §7.8.3, page 0x2A). Only what an image-backed
    /// reader does is claimed: C2 pointers and R-W subcodes would make Windows ask for them (cdrom.sys
    /// DeviceSetRawReadInfo).
    private func capabilitiesParameters(_ unit: LogicalUnit) -> [UInt8] {
        var w = BigEndianWriter()
        w.u8(unit.isDVDCapable ? 0x0B : 0x03)  // reads CD-R, CD-RW (and DVD-ROM)
        w.u8(0x00)  // writes nothing
        // Audio play is claimed because Linux's generic CD-ROM code checks it to automount (QEMU, VirtualBox).
        w.u8(0x71)  // audio play, mode 2 form 1, form 2, multisession
        w.u8(0x03)  // CD-DA commands, accurate stream
        w.u8(0x29 | (unit.preventRemoval ? 0x02 : 0x00))  // tray loader, eject, lock (+ locked)
        w.u8(0x00)
        w.be16(8800)  // maximum read speed, kB/s (50x)
        w.be16(0x0002)  // volume levels
        w.be16(2048)  // buffer size, KiB
        w.be16(2816)  // current read speed (16x)
        w.zeros(2)
        w.be16(0)  // maximum write speed
        w.be16(0)  // current write speed
        return w.bytes
    }

    func modeSense(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let ten = cdb.opcode == Command.modeSense10.opcode
        let disableBlockDescriptors = (cdb[1] ?? 0) & 0x08 != 0
        let pageControl = (cdb[2] ?? 0) >> 6
        let pageCode = (cdb[2] ?? 0) & 0x3F
        let subpage = cdb[3] ?? 0
        let allocation = ten ? Int(cdb.be16(7) ?? 0) : Int(cdb[4] ?? 0)
        if pageControl == 3 { return .checkCondition(.savingParametersNotSupported) }
        // Subpages: only "all pages, all subpages" (0x3F/0xFF), which here is the same as 0x3F.
        guard subpage == 0 || (pageCode == 0x3F && subpage == 0xFF) else { return .checkCondition(.invalidFieldInCDB) }

        let all = modePages(unit, pageControl: pageControl)
        let selected = pageCode == 0x3F ? all : all.filter { $0.code == pageCode }
        guard !selected.isEmpty else { return .checkCondition(.invalidFieldInCDB) }
        let pages = selected.flatMap(\.bytes)

        // A CD LUN sends no block descriptor (as QEMU); a disk sends one unless DBD.
        var descriptor: [UInt8] = []
        if unit.type == .disk && !disableBlockDescriptors && unit.visibleMedium != nil {
            var d = BigEndianWriter()
            d.be32(UInt32(clamping: unit.blockCount))
            d.be32(UInt32(unit.blockSize))  // byte 4 density code 0, bytes 5-7 block length
            descriptor = d.bytes
        }
        // Device-specific parameter of a disk (SBC-3 §6.4.1): WP, and DPOFUA because FUA is honoured (the write is
        // durable before its status), which lets Linux send FUA writes instead of whole-cache flushes.
        var deviceSpecific: UInt8 = 0
        if unit.type == .disk {
            deviceSpecific = (unit.honoursFUA ? 0x10 : 0x00) | ((unit.visibleMedium?.readOnly ?? false) ? 0x80 : 0x00)
        }
        var w = BigEndianWriter()
        if ten {
            w.be16(UInt16(6 + descriptor.count + pages.count))
            w.u8(0)  // medium type
            w.u8(deviceSpecific)
            w.zeros(2)
            w.be16(UInt16(descriptor.count))
        } else {
            w.u8(UInt8(3 + descriptor.count + pages.count))
            w.u8(0)
            w.u8(deviceSpecific)
            w.u8(UInt8(descriptor.count))
        }
        w.bytes += descriptor
        w.bytes += pages
        return truncated(w.bytes, to: allocation)
    }

    func modeSelect(_ cdb: CDB) -> Reply {
        let ten = cdb.opcode == Command.modeSelect10.opcode
        let savePages = (cdb[1] ?? 0) & 0x01 != 0
        let length = ten ? Int(cdb.be16(7) ?? 0) : Int(cdb[4] ?? 0)
        // SPC-4 §6.9: saving is not supported, so SP is an invalid field.
        guard !savePages else { return .checkCondition(.invalidFieldInCDB) }
        return length == 0 ? .good : .parameterList(length)
    }

    /// Checks a MODE SELECT parameter list: the header, an optional block descriptor matching the medium, and pages
    /// whose every byte equals the current value (SPC-4 §6.9: nothing here is changeable).
    func checkModeSelect(_ bytes: [UInt8], ten: Bool, unit: LogicalUnit) -> ParameterOutcome {
        let headerLength = ten ? 8 : 4
        guard bytes.count >= headerLength else { return .checkCondition(.parameterListLengthError) }
        let descriptorLength = ten ? Int(bytes[6]) << 8 | Int(bytes[7]) : Int(bytes[3])
        guard descriptorLength == 0 || descriptorLength == 8, bytes.count >= headerLength + descriptorLength else {
            return .checkCondition(.invalidFieldInParameterList)
        }
        if descriptorLength == 8 {
            let d = Array(bytes[headerLength..<headerLength + 8])
            let blockLength = Int(d[5]) << 16 | Int(d[6]) << 8 | Int(d[7])
            guard blockLength == unit.blockSize || blockLength == 0 else {
                return .checkCondition(.invalidFieldInParameterList)
            }
        }
        let current = modePages(unit, pageControl: 0)
        var offset = headerLength + descriptorLength
        while offset < bytes.count {
            guard offset + 2 <= bytes.count else { return .checkCondition(.parameterListLengthError) }
            let code = bytes[offset] & 0x3F
            let length = Int(bytes[offset + 1])
            guard offset + 2 + length <= bytes.count else { return .checkCondition(.parameterListLengthError) }
            guard let page = current.first(where: { $0.code == code }), page.bytes.count == 2 + length,
                Array(bytes[offset + 2..<offset + 2 + length]) == Array(page.bytes[2...])
            else { return .checkCondition(.invalidFieldInParameterList) }
            offset += 2 + length
        }
        return .good
    }
}
