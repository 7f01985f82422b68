import BulkOnly
import SCSI

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's entry point as `<module>_main`; handing control to libFuzzer's driver from there
/// keeps the fuzzer an ordinary SwiftPM product.
@_cdecl("FuzzCore_main")
func fuzzCoreMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { fuzz($0, $1) }
}

/// libFuzzer entry point: the input drives a Bulk-Only interface with two LUNs through CBWs, parameter data,
/// operator media changes and resets, exactly as the I/O layer would. Every answer is checked against the rules
/// the I/O layer relies on; a violation traps, which libFuzzer reports as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    var input = Input(UnsafeBufferPointer(start: start, count: count))
    var machine = Machine(seed: input.byte())
    while !input.isEmpty {
        machine.step(&input)
    }
    return 0
}

struct Input {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var offset = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    var isEmpty: Bool { offset >= bytes.count }

    mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func take(_ n: Int) -> [UInt8] { (0..<n).map { _ in byte() } }
}

struct Machine {
    var transport: BulkOnlyTransport
    var target: Target

    init(seed: UInt8) {
        let cdBytes: UInt64 = seed & 1 == 0 ? 700 * 2048 + 5 : 400_000 * 2048
        // Media are numbers here: a 1 MiB disk, one past 4 GiB (32-bit LBAs in bytes), one past 2 TiB (READ(16)).
        let diskBytes: UInt64 = [1 << 20, (5 << 30) + 512, (3 << 40) + 4096][Int(seed >> 6) % 3]
        let diskMedium = Medium(byteCount: diskBytes, readOnly: seed & 2 != 0, supportsUnmap: seed & 4 != 0)
        let cd = LogicalUnit(
            type: .cdrom, medium: seed & 8 == 0 ? Medium(byteCount: cdBytes, readOnly: true) : nil,
            opticalMedia: OpticalMedia.allCases[Int(seed >> 4) % 3])
        target = Target(units: [cd, LogicalUnit(type: .disk, medium: diskMedium)])
        transport = BulkOnlyTransport(maxLUN: 1)
    }

    mutating func step(_ input: inout Input) {
        switch input.byte() % 8 {
        case 0: target.powerOnReset()
        case 1: transport.reset()
        case 2: _ = target.insert(Medium(byteCount: UInt64(input.byte()) * 4096 + 1, readOnly: true), lun: Int(input.byte() % 2))
        case 3: _ = target.eject(lun: Int(input.byte() % 2), force: input.byte() & 1 != 0)
        default: command(&input)
        }
    }

    /// A CBW whose interesting fields come from the input, and a CDB of up to 16 raw bytes.
    mutating func command(_ input: inout Input) {
        var cbw = [UInt8](arrayLiteral: 0x55, 0x53, 0x42, 0x43) + input.take(4)
        // dCBWDataTransferLength over all 32 bits, with the edges a hostile host would try most often.
        let raw = input.take(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let length: UInt32
        switch input.byte() % 6 {
        case 0: length = raw & 0xFFFF
        case 1: length = raw
        case 2: length = UInt32.max - (raw & 0xFFF)
        case 3: length = 0x8000_0000 &+ (raw & 0x1FF) &- 0x100
        case 4: length = (raw & 0x7) &* 512 &+ (raw >> 3 & 0x3) &- 1  // a block or so, give or take a byte
        default: length = raw & 0x1FF_FFFF
        }
        cbw += [UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 24)]
        cbw += [input.byte() & 0x80, input.byte() % 3, input.byte() % 18]
        cbw += input.take(16)
        if input.byte() == 0xFF { cbw.removeLast() }  // now and then a short, invalid CBW
        switch transport.received(cbw) {
        case .ignore, .stallUntilReset:
            return
        case .execute(let decoded):
            let reply = target.execute(CDB(decoded.cdb), lun: Int(decoded.lun))
            check(reply, decoded, &input)
        }
    }

    mutating func check(_ reply: Reply, _ cbw: CBW, _ input: inout Input) {
        let lengths = reply.dataLength
        precondition(lengths.toHost == 0 || lengths.fromHost == 0, "a reply moves data one way only")
        let device: DataPhase =
            lengths.toHost > 0 ? .toHost(Int(lengths.toHost)) : lengths.fromHost > 0 ? .fromHost(Int(lengths.fromHost)) : .none
        let plan = TransferPlan(host: cbw.hostExpectation, device: device)
        let host = cbw.hostExpectation.length
        precondition(host == Int(cbw.dataTransferLength), "the host's length is taken whole")
        precondition(plan.send <= host && plan.receive + plan.discard <= host, "never move more than the host allows")
        precondition(Int(plan.residue) <= host, "residue within the host's length")
        precondition(!(plan.send > 0 && plan.receive > 0), "one direction per command")
        // The service acts on data-out (writes, unmaps, compares, selects) only outside a phase error: then it
        // receives exactly what the command needs, never less (a WRITE SAME's one block, a whole parameter list).
        if !plan.phaseError, lengths.fromHost > 0 {
            precondition(plan.receive == Int(lengths.fromHost), "a command that acts has all of its data")
        }
        if plan.phaseError { precondition(plan.receive == 0, "nothing is handed to a command in a phase error") }
        // VPD B0's limit: no data phase comes near 2^31 bytes, so nothing the service sizes from it can trap.
        precondition(lengths.toHost < 1 << 31 && lengths.fromHost < 1 << 31, "data phases are bounded")
        if case .data(let bytes) = reply {
            precondition(bytes.count <= 65_536 + 8, "replies are bounded by their allocation length field")
        }
        let lun = Int(cbw.lun)
        switch reply {
        case .read(let range), .readCD(let range, _), .write(let range, _), .verifyMedium(let range),
            .compare(let range), .writeSame(let range, _):
            precondition(range.lba + range.blocks <= target.units[lun].blockCount, "ranges stay on the medium")
            precondition(range.blocks > 0, "empty ranges are answered GOOD without I/O")
            precondition(range.blocks <= LogicalUnit.maximumTransferBlocks, "work per command is bounded")
        case .parameterList(let length):
            let received = input.take(min(length, Int(input.byte()) * 4))
            if case .unmap(let ranges) = target.receivedParameters(received, cdb: CDB(cbw.cdb), lun: lun) {
                for range in ranges {
                    precondition(range.lba + range.blocks <= target.units[lun].blockCount, "unmap stays on the medium")
                }
            }
        case .checkCondition(let sense):
            precondition(target.units[lun].sense == sense, "the failure's sense is kept for REQUEST SENSE")
        default:
            break
        }
        let status: CSWStatus = plan.phaseError ? .phaseError : .passed
        precondition(transport.finish(status: status, residue: plan.residue)?.tag == cbw.tag, "every command gets its CSW")
    }
}
