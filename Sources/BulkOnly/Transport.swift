/// The Bulk-Only Transport state machine of one interface (BOT 1.0 §5.3, §6).
///
/// The I/O layer feeds it what arrives on bulk OUT and on ep0; it answers with what to do. It never touches a
/// file descriptor. FunctionFS cannot wedge an endpoint (a host CLEAR_FEATURE always un-halts it), so the
/// "stall until Reset Recovery" rule for invalid CBWs is kept here as the `awaitingReset` state: while in it,
/// the I/O layer keeps re-halting both bulk endpoints.
public struct BulkOnlyTransport: Sendable {
    public enum State: Sendable, Equatable {
        /// A CBW is expected next.
        case idle
        /// A command runs; its CSW has not been queued yet.
        case executing(tag: UInt32)
        /// An invalid or meaningless CBW arrived; only a Bulk-Only Mass Storage Reset leaves this state.
        case awaitingReset
    }

    /// What to do with bytes that arrived when a CBW was expected.
    public enum CBWVerdict: Sendable, Equatable {
        case execute(CBW)
        /// Halt both bulk endpoints and keep them halted until the class reset.
        case stallUntilReset(CBWDefect)
        /// Nothing to do: bytes arrived while waiting for a reset (the endpoints stay halted).
        case ignore
    }

    public private(set) var state: State = .idle
    /// The highest LUN index, as reported by Get Max LUN.
    public let maxLUN: UInt8

    public init(maxLUN: UInt8) {
        self.maxLUN = maxLUN
    }

    /// Bytes arrived on bulk OUT where a CBW belongs.
    public mutating func received(_ bytes: some Collection<UInt8>) -> CBWVerdict {
        Array(bytes).withUnsafeBytes { received($0) }
    }

    /// As `received(_: some Collection<UInt8>)`, straight from a transfer buffer (not generic: no runtime generics
    /// per command).
    public mutating func received(_ bytes: UnsafeRawBufferPointer) -> CBWVerdict {
        switch state {
        case .awaitingReset:
            return .ignore
        case .executing:
            // The I/O layer only reads a CBW once the previous CSW is queued; reaching here is a host that
            // raced ahead, which BOT 1.0 §6.2.1 calls an invalid CBW.
            state = .awaitingReset
            return .stallUntilReset(.notAfterCSW)
        case .idle:
            break
        }
        guard bytes.count == CBW.size else {
            state = .awaitingReset
            return .stallUntilReset(.wrongLength)
        }
        guard let cbw = CBW(bytes) else {
            state = .awaitingReset
            return .stallUntilReset(.badSignature)
        }
        if let defect = cbw.meaninglessness(maxLUN: maxLUN) {
            state = .awaitingReset
            return .stallUntilReset(defect)
        }
        state = .executing(tag: cbw.tag)
        return .execute(cbw)
    }

    /// The command finished; returns the CSW to queue.
    public mutating func finish(status: CSWStatus, residue: UInt32) -> CSW? {
        guard case .executing(let tag) = state else { return nil }
        state = .idle
        return CSW(tag: tag, dataResidue: residue, status: status)
    }

    /// The host broke the protocol in a way no CSW can report (it sent less data than its CBW announced): from
    /// now on only a reset helps.
    public mutating func protocolViolated() {
        state = .awaitingReset
    }

    /// A Bulk-Only Mass Storage Reset arrived: abandon the command in flight, expect a CBW again.
    public mutating func reset() {
        state = .idle
    }

    /// The host deconfigured or reconfigured the interface.
    public mutating func disabled() {
        state = .idle
    }
}
