import Testing
@testable import BulkOnly

@Suite struct CBWTests {
    let inquiry: [UInt8] = [
        0x55, 0x53, 0x42, 0x43,  // USBC
        0x78, 0x56, 0x34, 0x12,  // tag
        0x24, 0x00, 0x00, 0x00,  // 36 bytes
        0x80, 0x01, 0x06,  // data-in, LUN 1, CB length 6
        0x12, 0x00, 0x00, 0x00, 0x24, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]

    @Test func decodesAValidCBW() throws {
        let cbw = try #require(CBW(inquiry))
        #expect(cbw.tag == 0x1234_5678)
        #expect(cbw.dataTransferLength == 36)
        #expect(cbw.isDataIn)
        #expect(cbw.lun == 1)
        #expect(cbw.commandBlockLength == 6)
        #expect(Array(cbw.cdb) == [0x12, 0, 0, 0, 0x24, 0])
        #expect(cbw.hostExpectation == .toHost(36))
        #expect(cbw.bytes == inquiry)
        #expect(cbw.meaninglessness(maxLUN: 1) == nil)
    }

    @Test func rejectsInvalidCBWs() {
        #expect(CBW(Array(inquiry.prefix(30))) == nil)
        #expect(CBW(inquiry + [0]) == nil)
        var badSignature = inquiry
        badSignature[3] = 0x44
        #expect(CBW(badSignature) == nil)
    }

    @Test func findsWhatMakesACBWNotMeaningful() throws {
        func with(_ index: Int, _ value: UInt8) throws -> CBW {
            var bytes = inquiry
            bytes[index] = value
            return try #require(CBW(bytes))
        }
        #expect(try with(12, 0x81).meaninglessness(maxLUN: 1) == .reservedFlagBits)
        #expect(try with(13, 0x11).meaninglessness(maxLUN: 1) == .reservedLUNBits)
        #expect(try with(13, 0x02).meaninglessness(maxLUN: 1) == .unsupportedLUN)
        #expect(try with(14, 0x26).meaninglessness(maxLUN: 1) == .reservedLengthBits)
        #expect(try with(14, 0x00).meaninglessness(maxLUN: 1) == .badCommandBlockLength)
        #expect(try with(14, 0x11).meaninglessness(maxLUN: 1) == .badCommandBlockLength)
        // SeaBIOS sends every command with length 12 and Windows REQUEST SENSE with 12: longer than needed is fine.
        #expect(try with(14, 12).meaninglessness(maxLUN: 1) == nil)
    }

    @Test func encodesCSW() {
        let csw = CSW(tag: 0x0102_0304, dataResidue: 0x200, status: .failed)
        #expect(csw.bytes == [0x55, 0x53, 0x42, 0x53, 4, 3, 2, 1, 0x00, 0x02, 0, 0, 1])
        #expect(CSW(csw.bytes) == csw)
        #expect(CSW([0x55, 0x53, 0x42, 0x53, 4, 3, 2, 1, 0, 2, 0, 0, 3]) == nil)
    }
}

@Suite struct ThirteenCasesTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var host: DataPhase
        var device: DataPhase
        var expected: TransferPlan.Expected
        var testDescription: String { "case \(expected.caseNumber)" }
    }

    static let rows: [Row] = [
        Row(host: .none, device: .none, expected: .init(1, residue: 0)),
        Row(host: .none, device: .toHost(36), expected: .init(2, phaseError: true, residue: 0)),
        Row(host: .none, device: .fromHost(512), expected: .init(3, phaseError: true, residue: 0)),
        Row(host: .toHost(512), device: .none, expected: .init(4, stallIn: true, residue: 512)),
        Row(host: .toHost(255), device: .toHost(36), expected: .init(5, send: 36, stallIn: true, residue: 219)),
        Row(host: .toHost(36), device: .toHost(36), expected: .init(6, send: 36, residue: 0)),
        Row(host: .toHost(18), device: .toHost(36), expected: .init(7, send: 18, phaseError: true, residue: 0)),
        Row(host: .toHost(512), device: .fromHost(512), expected: .init(8, stallIn: true, phaseError: true, residue: 512)),
        Row(host: .fromHost(512), device: .none, expected: .init(9, discard: 512, residue: 512)),
        Row(host: .fromHost(512), device: .toHost(512), expected: .init(10, stallOut: true, phaseError: true, residue: 512)),
        Row(host: .fromHost(4096), device: .fromHost(1024), expected: .init(11, receive: 1024, discard: 3072, residue: 3072)),
        Row(host: .fromHost(1024), device: .fromHost(1024), expected: .init(12, receive: 1024, residue: 0)),
        Row(host: .fromHost(512), device: .fromHost(1024), expected: .init(13, discard: 512, phaseError: true, residue: 512)),
    ]

    @Test(arguments: rows) func resolvesEachCase(_ row: Row) {
        #expect(TransferPlan(host: row.host, device: row.device).expected == row.expected)
    }
}

extension TransferPlan {
    struct Expected: Equatable, Sendable {
        var caseNumber: Int, send = 0, receive = 0, discard = 0
        var stallIn = false, stallOut = false, phaseError = false
        var residue: UInt32

        init(_ caseNumber: Int, send: Int = 0, receive: Int = 0, discard: Int = 0, stallIn: Bool = false,
             stallOut: Bool = false, phaseError: Bool = false, residue: UInt32) {
            self.caseNumber = caseNumber
            self.send = send
            self.receive = receive
            self.discard = discard
            self.stallIn = stallIn
            self.stallOut = stallOut
            self.phaseError = phaseError
            self.residue = residue
        }
    }

    var expected: Expected {
        Expected(caseNumber, send: send, receive: receive, discard: discard, stallIn: stallIn, stallOut: stallOut,
                 phaseError: phaseError, residue: residue)
    }
}

@Suite struct TransportStateTests {
    let cbw = CBW(tag: 7, dataTransferLength: 0, flags: 0, lun: 0, commandBlock: [0, 0, 0, 0, 0, 0]).bytes

    @Test func runsACommandAndProducesItsCSW() {
        var transport = BulkOnlyTransport(maxLUN: 0)
        guard case .execute(let decoded) = transport.received(cbw) else {
            Issue.record("a valid CBW was not executed")
            return
        }
        #expect(decoded.tag == 7)
        #expect(transport.state == .executing(tag: 7))
        #expect(transport.finish(status: .passed, residue: 0) == CSW(tag: 7, dataResidue: 0, status: .passed))
        #expect(transport.state == .idle)
        #expect(transport.finish(status: .passed, residue: 0) == nil)
    }

    @Test func invalidCBWStallsUntilReset() {
        var transport = BulkOnlyTransport(maxLUN: 0)
        #expect(transport.received(cbw.prefix(30)) == .stallUntilReset(.wrongLength))
        #expect(transport.state == .awaitingReset)
        // Even a perfect CBW is ignored until the class reset (BOT 1.0 §6.6.1).
        #expect(transport.received(cbw) == .ignore)
        transport.reset()
        #expect(transport.state == .idle)
        if case .execute = transport.received(cbw) {} else { Issue.record("not served after reset") }
    }

    @Test func meaninglessCBWStallsUntilReset() {
        var transport = BulkOnlyTransport(maxLUN: 0)
        var bytes = cbw
        bytes[13] = 1  // LUN 1 of a single-LUN device
        #expect(transport.received(bytes) == .stallUntilReset(.unsupportedLUN))
        var signature = cbw
        signature[0] = 0
        var fresh = BulkOnlyTransport(maxLUN: 0)
        #expect(fresh.received(signature) == .stallUntilReset(.badSignature))
    }

    @Test func aCBWDuringACommandIsInvalid() {
        var transport = BulkOnlyTransport(maxLUN: 0)
        _ = transport.received(cbw)
        #expect(transport.received(cbw) == .stallUntilReset(.notAfterCSW))
        #expect(transport.state == .awaitingReset)
    }
}

@Suite struct ProtocolViolationTests {
    @Test func aViolationWaitsForReset() {
        var transport = BulkOnlyTransport(maxLUN: 0)
        let cbw = CBW(tag: 1, dataTransferLength: 512, flags: 0, lun: 0, commandBlock: [0x2A]).bytes
        _ = transport.received(cbw)
        transport.protocolViolated()
        #expect(transport.state == .awaitingReset)
        #expect(transport.finish(status: .passed, residue: 0) == nil)
        #expect(transport.received(cbw) == .ignore)
        transport.reset()
        #expect(transport.state == .idle)
    }
}
