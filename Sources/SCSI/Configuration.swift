/// GET CONFIGURATION (MMC-6 §6.6): the drive's profiles and features. It must succeed with no medium, reporting
/// current profile 0 — Windows marks a drive "NonMmc" for good when it fails (cdrom.sys DeviceGetMmcSupportInfo).
extension Target {
    /// A feature descriptor: code, version, persistent, current, and its additional data.
    struct Feature {
        var code: UInt16
        var version: UInt8
        var persistent: Bool
        var current: Bool
        var data: [UInt8]

        var bytes: [UInt8] {
            var w = BigEndianWriter()
            w.be16(code)
            w.u8(version << 2 | (persistent ? 0x02 : 0) | (current ? 0x01 : 0))
            w.u8(UInt8(data.count))
            w.bytes += data
            return w.bytes
        }
    }

    /// Every feature the drive has, ascending by code, with "current" as it stands now.
    func features(_ unit: LogicalUnit) -> [Feature] {
        let profile = unit.profile
        let loaded = profile != .none
        // Profile List (0000h): DVD-ROM before CD-ROM, as MMC lists newer profiles first.
        var profiles: [UInt8] = []
        if unit.isDVDCapable { profiles += [0x00, 0x10, profile == .dvdROM ? 0x01 : 0x00, 0x00] }
        profiles += [0x00, 0x08, profile == .cdROM ? 0x01 : 0x00, 0x00]
        var list = [
            Feature(code: 0x0000, version: 0, persistent: true, current: true, data: profiles),
            // Core: physical interface 8 = USB; DBE (deferred-error reporting) set; INQ2 clear.
            Feature(code: 0x0001, version: 2, persistent: true, current: true, data: [0, 0, 0, 0x08, 0x01, 0, 0, 0]),
            // Morphing: OCEvent, since GESN reports the operational change class.
            Feature(code: 0x0002, version: 1, persistent: true, current: true, data: [0x02, 0, 0, 0]),
            // Removable Medium: tray loader, Load, Eject, Lock; no prevent jumper.
            Feature(code: 0x0003, version: 2, persistent: true, current: true, data: [0x39, 0, 0, 0]),
            // Random Readable: 2048-byte blocks, blocking 1 on CD and 16 on DVD (an ECC block), no page present.
            Feature(
                code: 0x0010, version: 0, persistent: false, current: loaded,
                data: [0, 0, 0x08, 0, 0, profile == .dvdROM ? 0x10 : 0x01, 0, 0]),
            Feature(code: 0x001D, version: 0, persistent: false, current: profile == .cdROM, data: []),
            // CD Read: no CD-DA accurate stream claims (DAP), no C2 pointers, no CD-Text.
            Feature(code: 0x001E, version: 2, persistent: false, current: profile == .cdROM, data: [0, 0, 0, 0]),
        ]
        // DVD Read only for a DVD-capable drive: Windows then treats it as a DVD drive (FILE_DEVICE_DVD).
        if unit.isDVDCapable {
            list.append(Feature(code: 0x001F, version: 1, persistent: false, current: profile == .dvdROM, data: [0, 0, 0, 0]))
        }
        list.append(Feature(code: 0x0100, version: 0, persistent: true, current: true, data: []))
        // Timeout: no Group 3 timeouts.
        list.append(Feature(code: 0x0105, version: 1, persistent: true, current: true, data: [0, 0, 0, 0]))
        return list
    }

    func getConfiguration(_ cdb: CDB, unit: LogicalUnit) -> Reply {
        let requestType = (cdb[1] ?? 0) & 0x03
        let start = cdb.be16(2) ?? 0
        let allocation = Int(cdb.be16(7) ?? 0)
        let all = features(unit)
        let selected: [Feature]
        switch requestType {
        case 0: selected = all.filter { $0.code >= start }
        case 1: selected = all.filter { $0.code >= start && $0.current }
        case 2: selected = all.filter { $0.code == start }  // exactly one, or the header alone
        default: return .checkCondition(.invalidFieldInCDB)
        }
        let body = selected.flatMap(\.bytes)
        var w = BigEndianWriter()
        // Data Length counts everything after itself, even what the allocation length cuts off.
        w.be32(UInt32(4 + body.count))
        w.zeros(2)
        w.be16(unit.profile.rawValue)
        w.bytes += body
        return truncated(w.bytes, to: allocation)
    }

    /// GET EVENT STATUS NOTIFICATION (MMC-6 §6.7), polled only. Classes: operational change, power management,
    /// media. The event data length is 6: Windows wants at least 4 after subtracting 2, and disables GESN for
    /// good otherwise (cdrom.sys GesnDataInterpret).
    mutating func getEventStatusNotification(_ cdb: CDB, lun: Int) -> Reply {
        let polled = (cdb[1] ?? 0) & 0x01 != 0
        let requested = cdb[4] ?? 0
        let allocation = Int(cdb.be16(7) ?? 0)
        guard polled else { return .checkCondition(.invalidFieldInCDB) }
        let supported: UInt8 = 0x16  // operational change (1), power management (2), media (4)
        let wanted = requested & supported
        var w = BigEndianWriter()
        guard wanted != 0 else {
            // No Event Available: a header alone.
            w.be16(2)
            w.u8(0x80)
            w.u8(supported)
            return truncated(w.bytes, to: allocation)
        }
        // Report the lowest-numbered requested class with an event; only the media class ever has one.
        let mediaEvent = units[lun].mediaEvents.first
        let notificationClass: UInt8
        if wanted & 0x10 != 0 && (mediaEvent != nil || wanted & 0x06 == 0) {
            notificationClass = 4
        } else {
            notificationClass = wanted & 0x02 != 0 ? 1 : 2
        }
        w.be16(6)
        w.u8(notificationClass)
        w.u8(supported)
        switch notificationClass {
        case 1:
            w.bytes += [0x00, 0x00, 0x00, 0x00]  // no change; operational status "available"
        case 2:
            w.bytes += [0x00, 0x01, 0x00, 0x00]  // no change; power status "active"
        default:
            let unit = units[lun]
            var present: UInt8 = unit.visibleMedium != nil ? 0x02 : 0x00
            let open: UInt8 = unit.trayOpen ? 0x01 : 0x00
            var event: UInt8 = 0
            if let mediaEvent {
                units[lun].mediaEvents.removeFirst()
                event = mediaEvent.rawValue
                // A removal is reported with the medium absent, even when a swap already loaded the next one.
                if mediaEvent == .mediaRemoval {
                    present = 0
                    // That is how a GESN host learns the medium went away; the rest follows as for a TEST UNIT
                    // READY host: the unit attention "medium may have changed".
                    if unit.change == .hidden { units[lun].change = .announced }
                }
            }
            w.bytes += [event, present | open, 0, 0]
        }
        return truncated(w.bytes, to: allocation)
    }
}
