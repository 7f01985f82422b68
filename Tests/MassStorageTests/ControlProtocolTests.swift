import Foundation
import Testing
@testable import MassStorage
import SCSI

@Suite struct ControlProtocolTests {
    @Test func requestsDecodeFromTheDocumentedJSON() throws {
        let decoder = JSONDecoder()
        #expect(try decoder.decode(DriveRequest.self, from: Data(#"{"command":"status"}"#.utf8)) == DriveRequest(command: "status"))
        #expect(
            try decoder.decode(DriveRequest.self, from: Data(#"{"command":"load","lun":1,"image":"debian.iso"}"#.utf8))
                == DriveRequest(command: "load", lun: 1, image: "debian.iso"))
        #expect(
            try decoder.decode(DriveRequest.self, from: Data(#"{"command":"set","lun":0,"cdrom":false,"rw":true}"#.utf8))
                == DriveRequest(command: "set", lun: 0, cdrom: false, rw: true))
        #expect(throws: (any Error).self) { try decoder.decode(DriveRequest.self, from: Data(#"{"lun":0}"#.utf8)) }
    }

    @Test func responsesCarryTheDocumentedFields() throws {
        let drive = DriveResponse.Drive(
            lun: 0, cdrom: true, writable: false, image: "/img/a.iso", present: true, locked: false, trayOpen: false,
            queuedImage: nil)
        let response = DriveResponse(ok: true, result: "done", drives: [drive], error: nil, connected: true)
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(response)) as? [String: Any]
        #expect(object?["ok"] as? Bool == true)
        #expect(object?["result"] as? String == "done")
        #expect(object?["connected"] as? Bool == true)
        let drives = object?["drives"] as? [[String: Any]]
        #expect(drives?.first?["image"] as? String == "/img/a.iso")
        #expect(drives?.first?["trayOpen"] as? Bool == false)
        let failure = DriveResponse(
            ok: false, result: nil, drives: nil, error: .init(code: "no-such-drive", message: "There is no drive 3."),
            connected: true)
        #expect(try JSONDecoder().decode(DriveResponse.self, from: JSONEncoder().encode(failure)) == failure)
    }

    @Test func traceEventsHaveAOneLineForm() {
        let event = TraceEvent(
            time: 0, lun: 1, opcode: 0x28, command: "READ(10)", lba: 16, blocks: 8, bytes: nil, status: "passed",
            sense: nil, botCase: 6, residue: 0, microseconds: 120)
        #expect(event.line == "LUN 1 READ(10) lba=16 blocks=8 -> passed case=6 residue=0 120us")
        var failed = event
        failed.sense = "05/21/00"
        failed.status = "failed"
        #expect(failed.line.contains("-> failed sense=05/21/00"))
    }

    @Test func inquiryStringsParse() {
        #expect(Identity(inquiryString: "HL-DT-ST:DVDRAM GP57EB40:PR10") == Identity(vendor: "HL-DT-ST", product: "DVDRAM GP57EB40", revision: "PR10"))
        #expect(Identity(inquiryString: "TOOLONGVENDOR:x:y") == nil)
        #expect(Identity(inquiryString: "a:b") == nil)
        #expect(Identity(inquiryString: "a:b\u{7}:c") == nil)
    }
}
