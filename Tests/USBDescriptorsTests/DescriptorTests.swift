import Testing
@testable import USBDescriptors

@Suite struct FunctionFSDescriptorTests {
    @Test func descriptorBlobMatchesGoldenBytes() {
        let interface: [UInt8] = [9, 4, 0, 0, 2, 0x08, 0x06, 0x50, 1]
        func endpoint(_ address: UInt8, _ size: UInt16) -> [UInt8] {
            [7, 5, address, 0x02, UInt8(size & 0xFF), UInt8(size >> 8), 0]
        }
        let companion: [UInt8] = [6, 0x30, 15, 0, 0, 0]
        let body =
            interface + endpoint(0x81, 64) + endpoint(0x02, 64)
            + interface + endpoint(0x81, 512) + endpoint(0x02, 512)
            + interface + endpoint(0x81, 1024) + companion + endpoint(0x02, 1024) + companion
        let total = 24 + body.count
        let header: [UInt8] = [
            3, 0, 0, 0,  // FUNCTIONFS_DESCRIPTORS_MAGIC_V2
            UInt8(total), 0, 0, 0,
            7, 0, 0, 0,  // HAS_FS_DESC | HAS_HS_DESC | HAS_SS_DESC
            3, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0,
        ]
        #expect(BulkOnlyInterface().functionFSDescriptors() == header + body)
        #expect(total == 24 + 23 + 23 + 35)

        // FUNCTIONFS_EVENTFD: the flag, and the descriptor number right after the flags, before the counts.
        let withEventFD: [UInt8] =
            [3, 0, 0, 0, UInt8(total + 4), 0, 0, 0, 7 | 32, 0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0]
        #expect(BulkOnlyInterface().functionFSDescriptors(eventFD: 9) == withEventFD + body)
    }

    @Test func stringsBlobMatchesGoldenBytes() {
        let blob = functionFSStrings(["Mass Storage"])
        let text = Array("Mass Storage".utf8) + [0]
        let length = 16 + 2 + text.count
        #expect(blob == [2, 0, 0, 0, UInt8(length), 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x09, 0x04] + text)
    }

    @Test func bulkPacketSizesPerSpeed() {
        #expect(USBSpeed.full.bulkMaxPacketSize == 64)
        #expect(USBSpeed.high.bulkMaxPacketSize == 512)
        #expect(USBSpeed.superSpeed.bulkMaxPacketSize == 1024)
    }
}

@Suite struct ControlRequestTests {
    @Test func decodesSetupPacket() {
        let request = ControlRequest([0xA1, 0xFE, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00])
        #expect(request == ControlRequest(requestType: 0xA1, request: 0xFE, value: 0, index: 2, length: 1))
        #expect(request?.isDeviceToHost == true)
        #expect(ControlRequest([0xA1, 0xFE, 0]) == nil)
    }

    @Test func recognisesTheTwoClassRequests() {
        let getMaxLUN = ControlRequest(requestType: 0xA1, request: 0xFE, value: 0, index: 0, length: 1)
        let reset = ControlRequest(requestType: 0x21, request: 0xFF, value: 0, index: 0, length: 0)
        #expect(MassStorageClassRequest(getMaxLUN) == .getMaxLUN)
        #expect(MassStorageClassRequest(reset) == .reset)
        // Wrong wLength or wValue: BOT 1.0 §3 fixes them, anything else is not these requests.
        #expect(MassStorageClassRequest(ControlRequest(requestType: 0xA1, request: 0xFE, value: 0, index: 0, length: 2)) == nil)
        #expect(MassStorageClassRequest(ControlRequest(requestType: 0x21, request: 0xFF, value: 1, index: 0, length: 0)) == nil)
        #expect(MassStorageClassRequest(ControlRequest(requestType: 0x40, request: 0xFF, value: 0, index: 0, length: 0)) == nil)
    }

    @Test func decodesFunctionFSEvents() {
        #expect(FunctionFSEvent([0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]) == .enable)
        #expect(FunctionFSEvent([0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]) == .disable)
        #expect(FunctionFSEvent([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == .bind)
        #expect(FunctionFSEvent([0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0]) == .resume)
        #expect(FunctionFSEvent([0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0]) == .unknown(9))
        #expect(
            FunctionFSEvent([0x21, 0xFF, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0])
                == .setup(ControlRequest(requestType: 0x21, request: 0xFF, value: 0, index: 0, length: 0)))
        #expect(FunctionFSEvent([0, 0, 0]) == nil)
    }
}
