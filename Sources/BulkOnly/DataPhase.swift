/// A data phase as one side sees it: none, device-to-host, or host-to-device, with a byte count.
public enum DataPhase: Sendable, Equatable {
    case none
    case toHost(Int)
    case fromHost(Int)

    public var length: Int {
        switch self {
        case .none: 0
        case .toHost(let n), .fromHost(let n): n
        }
    }
}

/// How one command's data phase runs, after the host's expectation (from the CBW) meets the device's intent
/// (from the SCSI layer): the thirteen cases of BOT 1.0 §6.7.
public struct TransferPlan: Sendable, Equatable {
    /// Which of the thirteen cases this is (1...13).
    public var caseNumber: Int
    /// Bytes to send on bulk IN.
    public var send: Int
    /// Bytes to receive on bulk OUT and hand to the command.
    public var receive: Int
    /// Bytes to receive on bulk OUT after `receive` and throw away (the host sent more than the command uses).
    public var discard: Int
    /// Halt bulk IN after sending, before the CSW: the host expects more data than comes (cases 4, 5, 8).
    public var stallIn: Bool
    /// Halt bulk OUT instead of receiving (case 10).
    public var stallOut: Bool
    /// The CSW must say phase error (cases 2, 3, 7, 8, 10, 13).
    public var phaseError: Bool
    /// dCSWDataResidue if everything planned moves: host length minus what the device used.
    public var residue: UInt32

    /// Resolves the case. `host` comes from the CBW, `device` from the command.
    public init(host: DataPhase, device: DataPhase) {
        send = 0
        receive = 0
        discard = 0
        stallIn = false
        stallOut = false
        phaseError = false
        residue = UInt32(clamping: host.length)
        switch (host, device) {
        case (.none, .none):
            caseNumber = 1
        case (.none, .toHost):
            caseNumber = 2
            phaseError = true
        case (.none, .fromHost):
            caseNumber = 3
            phaseError = true
        case (.toHost, .none):
            caseNumber = 4
            stallIn = true
        case (.toHost(let hi), .toHost(let di)) where hi > di:
            caseNumber = 5
            send = di
            stallIn = true
            residue = UInt32(clamping: hi - di)
        case (.toHost(let hi), .toHost(let di)) where hi == di:
            caseNumber = 6
            send = di
            residue = 0
        case (.toHost(let hi), .toHost):
            caseNumber = 7
            send = hi
            phaseError = true
            residue = 0
        case (.toHost, .fromHost):
            caseNumber = 8
            stallIn = true
            phaseError = true
        case (.fromHost(let ho), .none):
            // f_mass_storage reads and discards the data rather than stalling: hosts writing to a
            // write-protected LUN then get a clean CHECK CONDITION instead of a stall.
            caseNumber = 9
            discard = ho
        case (.fromHost, .toHost):
            caseNumber = 10
            stallOut = true
            phaseError = true
        case (.fromHost(let ho), .fromHost(let dout)) where ho > dout:
            caseNumber = 11
            receive = dout
            discard = ho - dout
            residue = UInt32(clamping: ho - dout)
        case (.fromHost(let ho), .fromHost(let dout)) where ho == dout:
            caseNumber = 12
            receive = dout
            residue = 0
        case (.fromHost(let ho), .fromHost):
            // The host sends less than the command needs: take it off the bus, use none of it.
            caseNumber = 13
            discard = ho
            phaseError = true
        }
    }
}
