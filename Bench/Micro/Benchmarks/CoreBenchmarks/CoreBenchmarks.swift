// What umsd's pure core costs per Bulk-Only command, before any I/O: decoding the CBW, the SCSI target's answer
// to a READ(10), and the BOT case resolution. Each benchmark runs 1000 operations per measured iteration
// (scalingFactor .kilo), so the '*' rows of the output are per operation: ns/op and mallocs/op.
import Benchmark
import BulkOnly
import SCSI

/// A READ(10) of 240 blocks (120 KiB, Linux's usb-storage maximum at high speed) at LBA 0x1234, as the host
/// sends it: 31 CBW bytes, data-in, LUN 0.
let read10CDB: [UInt8] = [0x28, 0, 0, 0, 0x12, 0x34, 0, 0, 240, 0]
let read10CBW = CBW(tag: 0x1234_5678, dataTransferLength: 240 * 512, flags: 0x80, lun: 0, commandBlock: read10CDB)
    .bytes

/// One writable 256 MiB disk, like the one the system benchmark serves.
func diskTarget() -> Target {
    Target(units: [LogicalUnit(type: .disk, medium: Medium(byteCount: 256 << 20, readOnly: false))])
}

var configuration: Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )
}

let benchmarks: @Sendable () -> Void = {
    // The server decodes CBWs straight from its transfer buffer (an UnsafeRawBufferPointer); so do these.
    Benchmark("CBW(bytes): decode 31 bytes", configuration: configuration) { benchmark in
        let buffer = transferBuffer(read10CBW)
        for _ in benchmark.scaledIterations {
            blackHole(CBW(UnsafeRawBufferPointer(buffer)))
        }
    }

    Benchmark("BulkOnlyTransport.received + finish", configuration: configuration) { benchmark in
        let bytes = UnsafeRawBufferPointer(transferBuffer(read10CBW))
        var transport = BulkOnlyTransport(maxLUN: 1)
        for _ in benchmark.scaledIterations {
            blackHole(transport.received(bytes))
            blackHole(transport.finish(status: .passed, residue: 0))
        }
    }

    Benchmark("Target.execute(READ(10)), CDB built outside", configuration: configuration) { benchmark in
        var target = diskTarget()
        let cdb = CDB(read10CDB)
        for _ in benchmark.scaledIterations {
            blackHole(target.execute(cdb, lun: 0))
        }
    }

    Benchmark("CDB from cbw.cdb + Target.execute(READ(10))", configuration: configuration) { benchmark in
        var target = diskTarget()
        let cbw = CBW(UnsafeRawBufferPointer(transferBuffer(read10CBW)))!
        for _ in benchmark.scaledIterations {
            blackHole(target.execute(cbw.cdb.withUnsafeBytes { CDB($0) }, lun: 0))
        }
    }

    Benchmark("TransferPlan(host:device:), READ case 6", configuration: configuration) { benchmark in
        let host = DataPhase.toHost(240 * 512)
        let device = DataPhase.toHost(240 * 512)
        for _ in benchmark.scaledIterations {
            blackHole(TransferPlan(host: blackHoleIdentity(host), device: blackHoleIdentity(device)))
        }
    }

    // The whole per-command core path of BulkOnlyFunction.start + the CSW: what the server pays per READ(10)
    // before it queues the data.
    Benchmark("READ(10) command: received, execute, plan, CSW", configuration: configuration) { benchmark in
        let bytes = UnsafeRawBufferPointer(transferBuffer(read10CBW))
        var transport = BulkOnlyTransport(maxLUN: 0)
        var target = diskTarget()
        var csw = [UInt8](repeating: 0, count: CSW.size)
        for _ in benchmark.scaledIterations {
            guard case .execute(let cbw) = transport.received(bytes) else { fatalError("CBW refused") }
            let reply = target.execute(cbw.cdb.withUnsafeBytes { CDB($0) }, lun: Int(cbw.lun))
            let lengths = reply.dataLength
            let device: DataPhase =
                lengths.toHost > 0 ? .toHost(Int(lengths.toHost))
                : lengths.fromHost > 0 ? .fromHost(Int(lengths.fromHost)) : .none
            let plan = TransferPlan(host: cbw.hostExpectation, device: device)
            transport.finish(status: .passed, residue: plan.residue)!.encode { csw[$0] = $1 }
            blackHole(csw)
        }
    }
}

/// A page-aligned copy of `bytes`, like the server's transfer buffers; lives as long as the process.
func transferBuffer(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 4096)
    buffer.copyMemory(from: UnsafeRawBufferPointer(start: bytes, count: bytes.count))
    return buffer
}

/// Keeps the optimizer from constant-folding an input.
@inline(never)
func blackHoleIdentity<T>(_ value: T) -> T { value }
