/// What became of an operator's request to change a LUN's medium.
public enum MediumRequestResult: Sendable, Equatable {
    /// Done: the host will be told through unit attentions and media events.
    case done
    /// The host holds the medium (PREVENT): it was asked to eject, and the change completes when it does.
    case ejectRequested
}

/// The medium state machine of each LUN: operator loads and ejects, host ejects and loads, and how each change
/// reaches the host, both to hosts that poll GET EVENT STATUS NOTIFICATION and to those that only send
/// TEST UNIT READY.
extension Target {
    /// The operator puts `medium` in the drive. A swap while the host holds the lock becomes an eject request.
    public mutating func insert(_ medium: Medium, lun: Int) -> MediumRequestResult {
        var unit = units[lun]
        defer { units[lun] = unit }
        unit.trayOpen = false
        guard unit.medium != nil else {
            unit.medium = medium
            unit.queuedMedium = nil
            unit.change = .announced
            unit.post(.newMedia)
            return .done
        }
        if unit.preventRemoval {
            unit.queuedMedium = medium
            unit.post(.ejectRequest)
            return .ejectRequested
        }
        // QEMU's order for a swap: the host first sees the medium gone (NOT READY 3A, GESN removal), then the new
        // one (UNIT ATTENTION 28, GESN new media), so even a host that polls only TEST UNIT READY notices.
        unit.medium = medium
        unit.change = .hidden
        unit.post(.mediaRemoval)
        unit.post(.newMedia)
        return .done
    }

    /// The operator takes the medium out. While the host holds it, only `force` does; otherwise the host is
    /// asked to eject (GESN eject request; Linux answers with PREVENT 0 + START STOP eject).
    public mutating func eject(lun: Int, force: Bool) -> MediumRequestResult {
        var unit = units[lun]
        defer { units[lun] = unit }
        unit.queuedMedium = nil
        guard unit.medium != nil else { return .done }
        if unit.preventRemoval && !force {
            unit.operatorEjectPending = true
            unit.post(.ejectRequest)
            return .ejectRequested
        }
        unit.medium = nil
        unit.preventRemoval = false
        unit.operatorEjectPending = false
        unit.change = nil
        unit.post(.mediaRemoval)
        return .done
    }

    /// START STOP UNIT (SBC-3 §5.25, MMC-6 §6.39).
    mutating func startStopUnit(_ cdb: CDB, lun: Int) -> Reply {
        let byte4 = cdb[4] ?? 0
        let start = byte4 & 0x01 != 0
        let loadEject = byte4 & 0x02 != 0
        let powerCondition = byte4 >> 4
        // A power condition change does not touch the medium; there is nothing to spin up or down.
        guard powerCondition == 0, loadEject else { return .good }
        var unit = units[lun]
        defer { units[lun] = unit }
        if start {
            // LOAD closes the tray but never brings back what the host ejected (macOS polls with LOAD).
            unit.trayOpen = false
            return .good
        }
        if unit.preventRemoval {
            return .checkCondition(unit.visibleMedium == nil ? .mediumRemovalPreventedNotReady : .mediumRemovalPrevented)
        }
        let hadMedium = unit.medium != nil
        unit.medium = nil
        unit.change = nil
        unit.trayOpen = unit.type == .cdrom
        unit.operatorEjectPending = false
        if hadMedium { unit.post(.mediaRemoval) }
        if let queued = unit.queuedMedium {
            // The operator's swap was waiting for this eject: the new medium goes in and the tray closes.
            unit.queuedMedium = nil
            unit.medium = queued
            unit.trayOpen = false
            unit.change = .announced
            unit.post(.newMedia)
        }
        return .good
    }
}

extension LogicalUnit {
    /// Queues a media event for GESN, each reported once; a repeated eject request is one request (a host that
    /// sees it twice may eject twice, ZuluIDE #191).
    mutating func post(_ event: MediaEvent) {
        if event == .ejectRequest && mediaEvents.contains(.ejectRequest) { return }
        mediaEvents.append(event)
        if mediaEvents.count > 4 { mediaEvents.removeFirst(mediaEvents.count - 4) }
    }
}
