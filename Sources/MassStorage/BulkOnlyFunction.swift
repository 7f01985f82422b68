import Backing
import CLibAIO
import BulkOnly
import FunctionFS
import Glibc
import Foundation
import Logging
import SCSI
import USBDescriptors

/// The Bulk-Only data path of one FunctionFS function: it turns ep0 events and AIO completions into work for the
/// pure core (`BulkOnlyTransport`, `Target`) and carries out what they answer on the endpoints.
///
/// Every bulk transfer goes through libaio. The next CBW read is queued as soon as a command needs the OUT pipe no
/// longer, and a CSW whose status is known goes out in the same `io_submit` as the last data.
final class BulkOnlyFunction {
    private let endpoints: FunctionFSEndpoints
    private let aio: AsyncIO
    /// The backing file of each LUN's loaded medium, by LUN.
    private(set) var images: [ImageFile?] {
        // A new medium starts with no stream and nothing read ahead.
        didSet {
            for lun in images.indices where images[lun] !== oldValue[lun] {
                lastReadEnd[lun] = 0
                prefetchedUntil[lun] = 0
            }
        }
    }
    /// Files the operator loaded that the target has not put in the drive yet (the host holds the old medium).
    private var pendingImages: [(id: UInt64, file: ImageFile)?]
    private var nextMediumID: UInt64 = 1
    /// What was last reported about each LUN's image changing behind umsd's back (logged once per change).
    private var reportedChanges: [ImageChange?]
    /// Where each LUN's last read ended, to recognise a sequential stream.
    private var lastReadEnd: [UInt64]
    /// How far each LUN's stream has been asked to be read ahead.
    private var prefetchedUntil: [UInt64]
    private var transport: BulkOnlyTransport
    private(set) var target: Target
    private let logger: Logger
    /// Room to read the medium for comparisons and CD sector synthesis, outside the transfer buffers.
    private let scratch: UnsafeMutableRawBufferPointer

    /// CBW reads and CSW writes.
    private let control: TransferPool
    /// Data in both directions.
    private let data: TransferPool
    private var roles: [SlotRole]
    private var generations: [UInt32]
    private var generation: UInt32 = 0
    private var batch: [UnsafeMutablePointer<iocb>?]

    private var enabled = false
    private var maxPacketSize = 512
    /// The operator's request size, if any (`--transfer-size`).
    private let transferSize: Int?
    /// Bytes per data-in request at the current speed: 16 KiB at high speed, where they let the first bytes onto
    /// the bus sooner and measured a few per cent faster on 64 KiB and 1 MiB reads; 64 KiB at SuperSpeed, so a
    /// 1 MiB command fits in the 16 requests in flight. Always whole packets: a short one would end the host's
    /// transfer early.
    private var inRequestSize: Int {
        let size = transferSize ?? (maxPacketSize >= 1024 ? 64 * 1024 : 16 * 1024)
        return size / maxPacketSize * maxPacketSize
    }
    private var cbwReadQueued = false
    private var wantCBWRead = false
    /// The CBW is read by a blocking `read` in the serving thread (see `readCBW(with:)`) instead of through AIO.
    let blockingCBWRead: Bool
    private let cbwBuffer: UnsafeMutableRawBufferPointer
    private var command: ActiveCommand?
    /// Told how often `timerFired` must run: while a halt waits for the controller, and while the bulk endpoints
    /// must stay halted until a Bulk-Only reset (FunctionFS cannot wedge them); nil when never.
    var onTimerChange: ((Int?) -> Void)?
    private var timerInterval: Int?

    private enum SlotRole {
        case idle, cbw, csw, dataIn(offset: Int, length: Int)
        /// `direct`: the image whose mapping the data is received straight into (rather than a pool buffer). The
        /// slot holds it, so the mapping stays until the kernel is done with it, whatever the operator loads.
        case dataOut(offset: Int, length: Int, direct: ImageFile?)
        /// An fdatasync of the command's image (FUA, SYNCHRONIZE CACHE); `lba` is reported if it fails.
        case sync(lba: UInt64)
    }

    fileprivate struct ActiveCommand {
        let cbw: CBW
        let lun: Int
        /// The LUN's image when the command started: all of its I/O goes there, even if the operator changes the
        /// medium in the meantime (the change reaches the host at the next command).
        let image: ImageFile?
        let reply: Reply
        let plan: TransferPlan
        let started: UInt64
        var failure: Sense?
        var queued = 0
        var completed = 0
        /// Bytes sent to the host, or received and written to the medium.
        var used = 0
        var outstanding = 0
        var cswQueued = false

        var totalOut: Int { plan.receive + plan.discard }
        /// A parameter list or WRITE SAME block, gathered before the command acts on it.
        var parameters: [UInt8] = []
        /// The CSW waits for bulk IN to be halted, which the controller refused for now.
        var waitingForHalt = false
        /// The CSW waits for data-in transfers that were queued without an eventfd signal to complete.
        var waitingForQuietTransfers = false
        /// An fdatasync is in flight: the CSW waits for it.
        var syncing = false
        /// Everything the host sent has been acted on (written, made durable, applied).
        var dataOutFinished = false
        /// Medium work that must finish before the CSW (`doPendingWork`).
        var work: MediumWork?
    }

    /// Whether the operator lets the host write each drive (flash drives only).
    var writable: [Bool]
    /// INQUIRY strings each drive was configured with (nil: the type's default), kept across type changes.
    let identities: [Identity?]
    /// Where image names are looked up; nil: images are given as paths.
    var imageFolder: String?
    /// `umsd trace` connections and the LUN each follows (nil: all).
    private var traceSubscribers: [(fd: Int32, lun: Int?)] = []
    /// Told about every change the operator made (drives, connected).
    var onStateChange: (([DriveResponse.Drive], Bool) -> Void)?

    init(endpoints: FunctionFSEndpoints, images: [ImageFile?], target: Target, writable: [Bool],
         identities: [Identity?], transferSize: Int?, depth: Int, blockingCBWRead: Bool = false,
         logger: Logger) throws(SystemError)
    {
        self.blockingCBWRead = blockingCBWRead
        self.writable = writable
        self.identities = identities
        self.endpoints = endpoints
        self.images = images
        pendingImages = Array(repeating: nil, count: images.count)
        reportedChanges = Array(repeating: nil, count: images.count)
        lastReadEnd = Array(repeating: 0, count: images.count)
        prefetchedUntil = Array(repeating: 0, count: images.count)
        self.target = target
        self.logger = logger
        transport = BulkOnlyTransport(maxLUN: UInt8(target.units.count - 1))
        // CBW reads, CSWs and syncs; after a reset the abandoned ones keep their slots until their completions.
        control = TransferPool(count: 8, bufferSize: 4096, base: 0)
        self.transferSize = transferSize
        data = TransferPool(count: depth, bufferSize: transferSize ?? 64 * 1024, base: 8)
        aio = try AsyncIO(depth: 8 + depth)
        roles = Array(repeating: .idle, count: 8 + depth)
        generations = Array(repeating: 0, count: 8 + depth)
        batch = []
        batch.reserveCapacity(8 + depth)
        // Large enough for the biggest data-out request (comparisons), and for VERIFY and WRITE SAME slices.
        scratch = .allocate(byteCount: max(transferSize ?? 64 * 1024, 1 << 20), alignment: 4096)
        cbwBuffer = .allocate(byteCount: 1024, alignment: 64)
    }

    deinit {
        scratch.deallocate()
        cbwBuffer.deallocate()
    }

    var completionFD: Int32 { aio.eventFD }

    /// A read that continues the previous one is a stream: have the kernel fetch what comes next while this
    /// command's data crosses the bus, so the next CBW finds its data in the page cache.
    ///
    /// The window is at least 2 MiB (four commands' worth when they are bigger), and asked for again only once
    /// less than half of it is left ahead: one `madvise` per megabyte or so, not one per command.
    private func readAhead(lun: Int, range: BlockRange) {
        guard let image = images[lun] else { return }
        let end = range.byteOffset + range.byteCount
        if range.byteOffset == lastReadEnd[lun] {
            let window = max(4 * range.byteCount, 2 << 20)
            if prefetchedUntil[lun] < end + window / 2 {
                let from = max(end, prefetchedUntil[lun])
                image.prefetch(at: from, length: end + window - from)
                prefetchedUntil[lun] = end + window
            }
        } else {
            prefetchedUntil[lun] = 0
        }
        lastReadEnd[lun] = end
    }

    // MARK: ep0

    func handle(_ event: FunctionFSEvent) {
        switch event {
        case .bind: logger.info("function bound to the gadget")
        case .unbind: logger.info("function unbound")
        case .enable:
            abandonEverything()
            enabled = true
            maxPacketSize = endpoints.maxPacketSize() ?? 512
            target.powerOnReset()
            transport.disabled()
            logger.info("host configured the device", metadata: ["maxPacket": "\(maxPacketSize)"])
            requestCBWRead()
            flush()
        case .disable:
            logger.info("host deconfigured the device (or the cable was pulled)")
            enabled = false
            abandonEverything()
        case .suspend: logger.debug("bus suspended")
        case .resume: logger.debug("bus resumed")
        case .setup(let request): setup(request)
        case .unknown(let type): logger.debug("unknown FunctionFS event \(type)")
        }
    }

    private func setup(_ request: ControlRequest) {
        do {
            switch MassStorageClassRequest(request) {
            case .getMaxLUN:
                logger.debug("Get Max LUN -> \(transport.maxLUN)")
                try endpoints.replyToSetup([transport.maxLUN])
            case .reset:
                logger.info("Bulk-Only Mass Storage Reset")
                abandonEverything()
                transport.reset()
                // The status stage goes out only now, after the reset is done (delayed status, as f_mass_storage).
                try endpoints.acknowledgeSetup()
                if enabled {
                    requestCBWRead()
                    flush()
                }
            case nil:
                logger.debug(
                    "stalling unsupported control request",
                    metadata: ["bmRequestType": "\(request.requestType)", "bRequest": "\(request.request)"])
                endpoints.stallSetup(request)
            }
        } catch {
            logger.warning("control request failed: \(error)")
        }
    }

    /// Drops the command in flight and every queued transfer; late completions of the old generation are ignored.
    private func abandonEverything() {
        generation &+= 1
        for tag in roles.indices {
            if case .idle = roles[tag] { continue }
            aio.cancel(pool(for: tag).iocbPointer(tag - pool(for: tag).base))
        }
        command = nil
        cbwReadQueued = false
        wantCBWRead = false
    }

    /// The timer asked for through `onTimerChange` fired: retry a refused halt, and while a CBW was invalid halt
    /// both endpoints again (the host may have cleared them without the reset).
    func timerFired() {
        if case .awaitingReset = transport.state {
            endpoints.haltIn()
            endpoints.haltOut()
        }
        aio.reap { tag, result in complete(tag: Int(tag), result: result) }
        advance()
        flush()
    }

    private func updateTimer() {
        let polling = command.map { $0.waitingForHalt || $0.waitingForQuietTransfers } ?? false
        let wanted: Int? = polling ? 1 : transport.state == .awaitingReset ? 20 : nil
        guard wanted != timerInterval else { return }
        timerInterval = wanted
        onTimerChange?(wanted)
    }

    // MARK: completions

    func reapCompletions() {
        aio.reap { tag, result in complete(tag: Int(tag), result: result) }
        advance()
        // A media change may have waited for the command using the drive to end.
        for lun in images.indices { reconcileImages(lun: lun) }
        flush()
    }

    private func pool(for tag: Int) -> TransferPool { control.contains(tag: tag) ? control : data }

    private func release(_ tag: Int) {
        roles[tag] = .idle
        pool(for: tag).give(tag - pool(for: tag).base)
    }

    private func complete(tag: Int, result: Int) {
        let role = roles[tag]
        let current = generations[tag] == generation
        let pool = pool(for: tag)
        let slot = tag - pool.base
        switch role {
        case .idle:
            logger.warning("completion for an idle transfer slot \(tag)")
            return
        case .cbw:
            if current { cbwReadQueued = false }
            guard current, result >= 0 else {
                release(tag)
                if current, result < 0 { logger.debug("CBW read ended: \(errnoName(-result))") }
                return
            }
            // Decoded straight from the transfer buffer, which stays ours until the slot is released.
            received(cbwBytes: UnsafeRawBufferPointer(rebasing: pool.buffer(slot)[0..<result]))
            release(tag)
        case .csw:
            release(tag)
            if current, result < 0 { logger.debug("CSW write ended: \(errnoName(-result))") }
        case .sync(let lba):
            release(tag)
            guard current, var cmd = command else { return }
            cmd.syncing = false
            if result < 0 {
                let error = ImageError("Synchronizing \(cmd.image?.path ?? "the image") failed: \(errnoName(-result)).")
                logger.error("\(error)")
                // Sticky: Linux reports a writeback error once; the next fdatasync would succeed over lost data.
                cmd.image?.recordWriteFailure(error)
                cmd.failure = cmd.failure ?? target.writeFailed(lun: cmd.lun, lba: lba)
            }
            command = cmd
        case .dataIn(_, let length):
            release(tag)
            guard current, var cmd = command else { return }
            cmd.outstanding -= 1
            guard result >= 0 else { return abort(cmd, "data-in transfer failed: \(errnoName(-result))") }
            cmd.completed += min(result, length)
            cmd.used += min(result, length)
            command = cmd
        case .dataOut(let offset, let length, let direct):
            guard current, var cmd = command else { return release(tag) }
            cmd.outstanding -= 1
            if let direct, result == -Int(EFAULT), case .write(let range, _) = cmd.reply {
                // f_fs could not copy into the mapping: the image's file system refused the page (full disk).
                logger.error("writing \(direct.path) at block \(range.lba + UInt64(offset / range.blockSize)) failed: no space or I/O error")
                cmd.failure = cmd.failure ?? target.writeFailed(lun: cmd.lun, lba: range.lba + UInt64(offset / range.blockSize))
                release(tag)
                cmd.completed += length
                command = cmd
                return
            }
            guard result >= 0 else {
                release(tag)
                return abort(cmd, "data-out transfer failed: \(errnoName(-result))")
            }
            guard result == length else {
                release(tag)
                // The host sent less than its CBW announced: later reads would swallow the next CBW.
                abort(cmd, "host sent \(result) of \(length) bytes of a data-out transfer")
                return protocolFailure()
            }
            if direct != nil {
                cmd.used += length
            } else if cmd.failure == nil, offset < cmd.plan.receive {
                let useful = min(length, cmd.plan.receive - offset)
                consume(UnsafeRawBufferPointer(rebasing: pool.buffer(slot)[0..<useful]), at: offset, for: &cmd)
            }
            release(tag)
            cmd.completed += length
            command = cmd
        }
    }

    private func abort(_ cmd: ActiveCommand, _ why: String) {
        logger.info("command abandoned: \(why)", metadata: ["tag": "\(cmd.cbw.tag)"])
        command = nil
    }

    /// The host broke the protocol beyond what a CSW can report: stall until it resets us.
    private func protocolFailure() {
        transport.protocolViolated()
        endpoints.haltIn()
        endpoints.haltOut()
    }

    // MARK: commands

    private func received(cbwBytes bytes: UnsafeRawBufferPointer) {
        switch transport.received(bytes) {
        case .ignore:
            return
        case .stallUntilReset(let defect):
            logger.info("invalid CBW (\(defect.rawValue), \(bytes.count) bytes): halting until reset")
            endpoints.haltIn()
            endpoints.haltOut()
        case .execute(let cbw):
            start(cbw)
        }
    }

    private func start(_ cbw: CBW) {
        // Each command's transfers carry a generation of their own. A completion of the previous command's that
        // arrives after this CBW (nothing orders it before a blocking CBW read, as f_fs's ordered workqueue does for
        // an AIO one) then only gives its slot back instead of counting as this command's.
        generation &+= 1
        let lun = Int(cbw.lun)
        var reply = target.execute(cbw.cdb.withUnsafeBytes { CDB($0) }, lun: lun)
        // VPD B0's transfer limit keeps every data phase far below 2^31 bytes; a length beyond what an Int holds
        // (a 32-bit target) is refused rather than converted with a trap.
        if Int(exactly: reply.dataLength.toHost) == nil || Int(exactly: reply.dataLength.fromHost) == nil {
            reply = .checkCondition(target.failed(lun: lun, sense: .invalidFieldInCDB))
        }
        let lengths = reply.dataLength
        let device: DataPhase =
            lengths.toHost > 0 ? .toHost(Int(lengths.toHost))
            : lengths.fromHost > 0 ? .fromHost(Int(lengths.fromHost)) : .none
        let plan = TransferPlan(host: cbw.hostExpectation, device: device)
        var failure: Sense?
        if case .checkCondition(let sense) = reply { failure = sense }
        let image = images[lun]
        if failure == nil { failure = mediumRefusal(reply, cdb: cbw.commandBlock[0], lun: lun, image: image) }
        command = ActiveCommand(cbw: cbw, lun: lun, image: image, reply: reply, plan: plan,
                                started: monotonicNanoseconds(), failure: failure)
        logger.trace("CBW tag \(cbw.tag) LUN \(lun) opcode \(cbw.commandBlock[0]) plan \(plan)")
        if case .read(let range) = reply, failure == nil { readAhead(lun: lun, range: range) }
        // Commands without a data phase that still touch the medium run now, before their CSW.
        if plan.send == 0 && plan.receive == 0 && command?.failure == nil { runWithoutData(&command!) }
        if plan.receive + plan.discard == 0 && !plan.stallOut {
            requestCBWRead()
        }
    }

    /// Moves the command in flight forward as far as free slots and finished transfers allow.
    private func advance() {
        guard var cmd = command else { return }
        defer {
            if cmd.cswQueued {
                command = nil
                reconcileImages(lun: cmd.lun)
            } else {
                command = cmd
            }
        }
        // Waiting for the disk: the CSW goes out when the fdatasync completes, or the medium work is done.
        if cmd.syncing || cmd.work != nil { return }
        let plan = cmd.plan
        if plan.send > 0 {
            while cmd.queued < plan.send, cmd.failure == nil, let slot = data.take() {
                // READ CD sectors may straddle two requests: `fillCD` starts and ends mid-sector.
                let length = min(inRequestSize, plan.send - cmd.queued)
                // Most data-in completions only free their slot, which the next CBW's wake-up reaps anyway. Only a
                // transfer the command waits for signals: the one that took the last free slot with data still to
                // come, and every one before a halt (which must wait for all of them).
                // With blocking CBW reads every completion signals: the CBW no longer comes through f_fs's
                // workqueue behind them, so the next command may find its slots still in flight and must be woken.
                let signal =
                    blockingCBWRead || plan.stallIn || (data.freeCount == 0 && cmd.queued + length < plan.send)
                let source: UnsafeMutableRawPointer
                // Only pages already in the page cache go from the mapping: a page the disk cannot read would fail
                // f_fs's copy after the CSW may be on its way; `fill` reads it instead and names the LBA.
                if case .read(let range) = cmd.reply, let image = cmd.image,
                    let mapped = image.mappedForReading(at: range.byteOffset + UInt64(cmd.queued), length: length),
                    image.isResident(at: range.byteOffset + UInt64(cmd.queued), length: length)
                {
                    source = mapped
                } else {
                    let buffer = UnsafeMutableRawBufferPointer(rebasing: data.buffer(slot)[0..<length])
                    if !fill(buffer, for: &cmd, at: cmd.queued) {
                        data.give(slot)
                        break
                    }
                    source = buffer.baseAddress!
                }
                let last = cmd.queued + length == plan.send
                if last, canCarryCSW(cmd, lastRequest: length), let csw = closingCSW(&cmd) {
                    // The CSW rides in the same request as the last data: one USB request (and one f_fs
                    // allocation, copy and completion) less per command. The data ends on a packet boundary and the
                    // host asked for exactly this much, so the CSW is the next packet it reads either way.
                    let trailer = data.trailer(slot)
                    csw.encode { trailer[$0] = $1 }
                    claim(pool: data, slot: slot, role: .dataIn(offset: cmd.queued, length: length))
                    // `source` is the slot's buffer or the image mapping, both valid through the submission.
                    batch.append(
                        data.prepare(slot, fd: endpoints.bulkIn, data: source, length: length, trailerLength: CSW.size,
                                     eventFD: blockingCBWRead ? aio.eventFD : -1))
                } else {
                    enqueue(pool: data, slot: slot, role: .dataIn(offset: cmd.queued, length: length),
                            fd: endpoints.bulkIn, external: source, length: length, signal: signal)
                }
                cmd.queued += length
                cmd.outstanding += 1
            }
            let allQueued = cmd.queued == plan.send || cmd.failure != nil
            if allQueued && !plan.stallIn && cmd.failure == nil {
                queueCSW(&cmd)
            } else if allQueued && cmd.outstanding == 0 {
                // Halting with data still queued would fail (and USB forbids it): only once it has all gone.
                cmd.waitingForQuietTransfers = false
                haltInThenCSW(&cmd)
            } else if allQueued {
                // The medium failed mid-way: transfers queued without a signal must finish before the halt.
                cmd.waitingForQuietTransfers = true
            }
        } else if cmd.totalOut > 0 {
            while cmd.queued < cmd.totalOut, let slot = data.take() {
                // Every OUT request but the last ends on a packet boundary: a FunctionFS read completes only when
                // full or on a short packet, and a packet longer than the request loses its excess. So a request
                // stops where the used data ends only when that is a packet boundary (at SuperSpeed, 512 used
                // bytes of a 1024-byte packet are not).
                var length = min(data.bufferSize, cmd.totalOut - cmd.queued)
                let toBoundary = plan.receive - cmd.queued
                if cmd.queued < plan.receive, toBoundary < length, toBoundary % maxPacketSize == 0 {
                    length = toBoundary
                }
                if cmd.queued + length <= plan.receive, cmd.failure == nil, case .write(let range, _) = cmd.reply,
                    let image = cmd.image,
                    let target = image.mappedForWriting(at: range.byteOffset + UInt64(cmd.queued), length: length)
                {
                    // One copy, as the kernel's gadget: f_fs writes the host's data into the page cache itself.
                    enqueue(pool: data, slot: slot, role: .dataOut(offset: cmd.queued, length: length, direct: image),
                            fd: endpoints.bulkOut, write: false, external: target, length: length)
                } else {
                    enqueue(pool: data, slot: slot, role: .dataOut(offset: cmd.queued, length: length, direct: nil),
                            fd: endpoints.bulkOut, write: false, length: length)
                }
                cmd.queued += length
                cmd.outstanding += 1
                if cmd.queued == cmd.totalOut { requestCBWRead() }
            }
            if cmd.completed == cmd.totalOut {
                // Only a whole, meaningful command acts: in a phase error (the host sent less than the CDB needs, or
                // expected the wrong direction) nothing is written, unmapped, compared or selected.
                if cmd.failure == nil && !plan.phaseError && !cmd.dataOutFinished && cmd.used == plan.receive {
                    finishDataOut(&cmd)
                }
                cmd.dataOutFinished = true
                if !cmd.syncing && cmd.work == nil { queueCSW(&cmd) }
            }
        } else {
            if plan.stallOut && !cmd.waitingForHalt {
                endpoints.haltOut()
                requestCBWRead()
            }
            if plan.stallIn {
                haltInThenCSW(&cmd)
            } else {
                queueCSW(&cmd)
            }
        }
    }

    /// BOT 1.0 §6.7: when the host expects more data than comes, bulk IN stalls before the CSW. A controller that
    /// still holds the last IN data refuses the halt; the CSW then waits and the timer retries (f_mass_storage
    /// retries too), until the halt takes or a reset or disconnect abandons the command.
    private func haltInThenCSW(_ cmd: inout ActiveCommand) {
        switch endpoints.haltIn() {
        case .halted:
            cmd.waitingForHalt = false
            queueCSW(&cmd)
        case .busy:
            cmd.waitingForHalt = true
        case .failed:
            logger.warning("bulk IN could not be halted before the CSW (tag \(cmd.cbw.tag))")
            cmd.waitingForHalt = false
            queueCSW(&cmd)
        }
    }

    /// Copies the next piece of a data-in reply into `buffer`; false when the medium could not be read.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer, for cmd: inout ActiveCommand, at offset: Int) -> Bool {
        switch cmd.reply {
        case .data(let bytes):
            bytes.withUnsafeBytes { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + buffer.count]))
            }
            return true
        case .read(let range):
            guard let image = cmd.image else {
                cmd.failure = target.readFailed(lun: cmd.lun, lba: range.lba + UInt64(offset / range.blockSize))
                return false
            }
            do {
                try image.read(into: buffer, at: range.byteOffset + UInt64(offset))
                return true
            } catch {
                logger.error("\(error)")
                cmd.failure = target.readFailed(lun: cmd.lun, lba: range.lba + UInt64(offset / range.blockSize))
                return false
            }
        case .readCD(let range, let layout):
            return fillCD(buffer, range: range, layout: layout, at: offset, for: &cmd)
        default:
            cmd.failure = target.readFailed(lun: cmd.lun, lba: 0)
            return false
        }
    }

    private func queueCSW(_ cmd: inout ActiveCommand) {
        guard !cmd.cswQueued else { return }
        guard let slot = control.take() else {
            // Every control slot waits for a completion (CSWs and syncs of commands a reset abandoned): the CSW goes
            // out at the next turn, when one of them has given its slot back.
            logger.warning("no free slot for the CSW of tag \(cmd.cbw.tag) yet")
            return
        }
        guard let csw = closingCSW(&cmd) else {
            control.give(slot)
            return
        }
        let buffer = control.buffer(slot)
        csw.encode { buffer[$0] = $1 }
        // Nothing waits for the CSW to complete: its slot is reaped with the next CBW (which, read through AIO,
        // completes after it on f_fs's ordered workqueue; a blocking read does not, hence the signal then).
        enqueue(pool: control, slot: slot, role: .csw, fd: endpoints.bulkIn, write: true, length: CSW.size,
                signal: blockingCBWRead)
    }

    /// Ends the command with the transport and returns its CSW, to be queued at once.
    private func closingCSW(_ cmd: inout ActiveCommand) -> CSW? {
        guard !cmd.cswQueued else { return nil }
        let status: CSWStatus = cmd.plan.phaseError ? .phaseError : cmd.failure != nil ? .failed : .passed
        let residue =
            cmd.failure != nil && !cmd.plan.phaseError
            ? UInt32(clamping: cmd.cbw.hostExpectation.length - cmd.used) : cmd.plan.residue
        guard let csw = transport.finish(status: status, residue: residue) else {
            logger.error("no CSW for tag \(cmd.cbw.tag): the transport is not executing a command")
            return nil
        }
        cmd.cswQueued = true
        trace(cmd, status: status, residue: residue)
        return csw
    }

    /// The CSW may share the last data-in request: the command succeeded so far, the host expects exactly the
    /// data that comes (BOT case 6, no halt, no residue), and the data ends on a packet boundary, so the CSW
    /// is a packet of its own on the wire. And only when its 13 bytes do not make f_fs's buffer for the request
    /// a size larger: 4 KiB + 13 would take (and zero) 8 KiB, 64 KiB + 13 a 128 KiB block, which costs more
    /// than the separate request it saves.
    private func canCarryCSW(_ cmd: ActiveCommand, lastRequest length: Int) -> Bool {
        let plan = cmd.plan
        return cmd.failure == nil && !plan.stallIn && !plan.phaseError && plan.residue == 0
            && plan.send == cmd.cbw.hostExpectation.length && plan.send % maxPacketSize == 0
            && KernelBuffer.allocation(for: length + CSW.size) == KernelBuffer.allocation(for: length)
    }

    private func requestCBWRead() {
        wantCBWRead = true
    }

    /// Marks `slot` as carrying `role` for the current generation, before its iocb goes to the kernel.
    private func claim(pool: TransferPool, slot: Int, role: SlotRole) {
        let tag = pool.base + slot
        roles[tag] = role
        generations[tag] = generation
    }

    /// `signal`: the completion wakes the loop (through the eventfd); otherwise it waits in the AIO ring until
    /// the next wake-up reaps it.
    private func enqueue(
        pool: TransferPool, slot: Int, role: SlotRole, fd: Int32, write: Bool = true, external: UnsafeMutableRawPointer,
        length: Int, signal: Bool = true
    ) {
        claim(pool: pool, slot: slot, role: role)
        // The image mapping outlives an IN submission (when f_fs copies the data) and an OUT transfer too: the
        // slot's role holds the image until the transfer completes.
        batch.append(
            pool.prepare(slot, fd: fd, write: write, external: external, length: length,
                         eventFD: signal ? aio.eventFD : -1))
    }

    private func enqueue(
        pool: TransferPool, slot: Int, role: SlotRole, fd: Int32, write: Bool, length: Int, signal: Bool = true
    ) {
        claim(pool: pool, slot: slot, role: role)
        batch.append(pool.prepare(slot, fd: fd, write: write, length: length, eventFD: signal ? aio.eventFD : -1))
    }

    /// For trace logs: what the loop is waiting for.
    var waitState: String {
        let cmd = command.map {
            "command tag \($0.cbw.tag) queued \($0.queued) completed \($0.completed) outstanding \($0.outstanding) csw \($0.cswQueued) halt \($0.waitingForHalt) quiet \($0.waitingForQuietTransfers) syncing \($0.syncing)"
        }
        return "\(cmd ?? "no command") wantCBW \(wantCBWRead) enabled \(enabled) transport \(transport.state) freeData \(data.freeCount) freeControl \(control.freeCount)"
    }

    /// The serving thread should wait for the next CBW in `readCBW(with:)`: nothing else is in progress.
    var wantsBlockingCBWRead: Bool {
        guard blockingCBWRead, wantCBWRead, enabled, command == nil, case .idle = transport.state else { return false }
        return true
    }

    /// Waits for the next CBW in a blocking read and starts its command. Returns false when the read was cut short
    /// because the event loop has something to handle (the caller runs it, then calls again if still wanted).
    func readCBW(with reader: InterruptibleRead) -> Bool {
        // `cbwBuffer` holds 1024 bytes, the largest bulk wMaxPacketSize, and lives as long as this object.
        guard let n = reader.read(endpoints.bulkOut, into: cbwBuffer.baseAddress!, count: maxPacketSize) else {
            return false
        }
        wantCBWRead = false
        // Whatever completed while this thread slept frees its slot before the new command wants one.
        aio.reap { tag, result in complete(tag: Int(tag), result: result) }
        guard n >= 0 else {
            logger.debug("CBW read ended: \(errnoName(-n))")
            return true
        }
        received(cbwBytes: UnsafeRawBufferPointer(rebasing: cbwBuffer[0..<n]))
        advance()
        flush()
        return true
    }

    /// Submits everything prepared since the last flush, the next CBW read last.
    func flush() {
        defer { updateTimer() }
        if wantCBWRead && !cbwReadQueued && enabled && !blockingCBWRead, case .idle = transport.state,
            let slot = control.take()
        {
            wantCBWRead = false
            cbwReadQueued = true
            // A whole packet: a CBW of any other length must arrive as such to be recognised as invalid.
            enqueue(pool: control, slot: slot, role: .cbw, fd: endpoints.bulkOut, write: false, length: maxPacketSize)
        } else if wantCBWRead && cbwReadQueued {
            wantCBWRead = false
        }
        guard !batch.isEmpty else { return }
        var submitted = 0
        batch.withUnsafeMutableBufferPointer { pointers in
            while submitted < pointers.count {
                do {
                    submitted += try aio.submit(pointers.baseAddress! + submitted, count: pointers.count - submitted)
                } catch {
                    logger.error("\(error)")
                    break
                }
            }
        }
        guard submitted < batch.count else { return batch.removeAll(keepingCapacity: true) }
        // What the kernel refused will never complete: give the slots back. A refused data-in transfer (the image
        // mapping faulted: the file shrank under umsd) fails the command with a medium error, and the host still
        // gets its halt and CSW; a refused data-out transfer leaves host data nobody will read, so the device
        // stalls until the host resets it.
        var refusedIn: Int?
        var refusedOut = false
        for pointer in batch[submitted...] {
            guard let tag = pointer.map({ Int(bitPattern: $0.pointee.data) }) else { continue }
            let current = generations[tag] == generation
            switch roles[tag] {
            case .dataIn(let offset, _) where current:
                refusedIn = min(refusedIn ?? offset, offset)
                command?.outstanding -= 1
            case .dataOut where current:
                refusedOut = true
            case .cbw:
                cbwReadQueued = false
            default:
                break
            }
            release(tag)
        }
        batch.removeAll(keepingCapacity: true)
        if refusedOut, command != nil {
            logger.error("the kernel refused a data-out transfer; stalling until the host resets the device")
            command = nil
            protocolFailure()
        } else if let offset = refusedIn, var cmd = command {
            if cmd.failure == nil {
                var lba: UInt64 = 0
                switch cmd.reply {
                case .read(let range): lba = range.lba + UInt64(offset / range.blockSize)
                case .readCD(let range, let layout): lba = range.lba + UInt64(offset / layout.bytesPerSector)
                default: break
                }
                logger.error("LUN \(cmd.lun): the kernel refused a data-in transfer at block \(lba) (the image cannot be read there)")
                cmd.failure = target.readFailed(lun: cmd.lun, lba: lba)
            }
            command = cmd
            advance()
            flush()
        }
    }

    private func trace(_ cmd: ActiveCommand, status: CSWStatus, residue: UInt32) {
        let logging = logger.logLevel <= .debug
        guard logging || !traceSubscribers.isEmpty else { return }
        let microseconds = (monotonicNanoseconds() - cmd.started) / 1000
        var event = TraceEvent(
            time: wallClockSeconds(), lun: cmd.lun, opcode: cmd.cbw.commandBlock[0],
            command: Command.name(of: cmd.cbw.commandBlock[0], type: target.units[cmd.lun].type),
            lba: nil, blocks: nil, bytes: nil, status: "\(status)", sense: cmd.failure.map { "\($0)" },
            botCase: cmd.plan.caseNumber, residue: residue, microseconds: microseconds)
        switch cmd.reply {
        case .read(let range), .write(let range, _), .readCD(let range, _), .verifyMedium(let range),
            .compare(let range), .writeSame(let range, _):
            event.lba = range.lba
            event.blocks = range.blocks
        case .data(let bytes): event.bytes = bytes.count
        default: break
        }
        if logging { logger.debug("\(event.line)") }
        publish(event)
    }

    /// Streams `event` to every `umsd trace` listening for its LUN; a listener that cannot keep up or went away is
    /// dropped, so tracing never slows the host down.
    private func publish(_ event: TraceEvent) {
        guard !traceSubscribers.isEmpty, let json = try? JSONEncoder().encode(event) else { return }
        let line = Array(json) + [10]
        traceSubscribers.removeAll { subscriber in
            guard subscriber.lun == nil || subscriber.lun == event.lun else { return false }
            let sent = line.withUnsafeBytes { send(subscriber.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if sent == line.count { return false }
            close(subscriber.fd)
            return true
        }
    }

    /// Adds a `umsd trace` connection: from now on it gets one JSON line per command (of `lun`, or all).
    func subscribeTrace(fd: Int32, lun: Int?) {
        // Each listener costs a descriptor and a send per command: a bound keeps a careless script from using up either.
        guard traceSubscribers.count < 16 else {
            let refusal = Array(#"{"ok":false,"error":{"code":"busy","message":"16 trace listeners are attached already."}}"#.utf8) + [10]
            _ = refusal.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            close(fd)
            return
        }
        traceSubscribers.append((fd, lun))
        logger.info("trace listener attached\(lun.map { " for LUN \($0)" } ?? "")")
    }
}

/// One host command as `umsd trace` shows it.
public struct TraceEvent: Codable, Sendable, Equatable {
    public var time: Double
    public var lun: Int
    public var opcode: UInt8
    public var command: String
    public var lba: UInt64?
    public var blocks: UInt64?
    public var bytes: Int?
    public var status: String
    public var sense: String?
    public var botCase: Int
    public var residue: UInt32
    public var microseconds: UInt64

    /// The one-line form, for logs and the terminal.
    public var line: String {
        var text = "LUN \(lun) \(command)"
        if let lba, let blocks { text += " lba=\(lba) blocks=\(blocks)" }
        if let bytes { text += " \(bytes) bytes" }
        text += " -> \(status)"
        if let sense { text += " sense=\(sense)" }
        return text + " case=\(botCase) residue=\(residue) \(microseconds)us"
    }
}

// MARK: medium work beyond plain reads and writes

/// Medium work that may take long (a VERIFY reading, a WRITE SAME writing up to the limit VPD B0 advertises), done a
/// slice at a time between turns of the event loop, so that resets, ep0, signals and the control socket are answered
/// while it runs. The command's CSW waits for it.
fileprivate enum MediumWork {
    case verify(BlockRange, done: UInt64)
    /// The block to write is repeated in `scratch` from its start, `blocksPerChunk` times.
    case writeSame(BlockRange, done: UInt64, blocksPerChunk: UInt64)
}

extension BulkOnlyFunction {
    /// Why a command that touches the medium cannot run at all, before any data moves: no backing file behind the
    /// medium, an image that shrank below the blocks asked for, a write to a file that was deleted while served, or
    /// a write after an earlier write or synchronization failed. Nil for commands that may go ahead.
    fileprivate func mediumRefusal(_ reply: Reply, cdb opcode: UInt8, lun: Int, image: ImageFile?) -> Sense? {
        let range: BlockRange?
        let writes: Bool
        switch reply {
        case .read(let r), .readCD(let r, _), .verifyMedium(let r), .compare(let r): (range, writes) = (r, false)
        case .write(let r, _), .writeSame(let r, _): (range, writes) = (r, true)
        case .synchronizeCache: (range, writes) = (nil, true)
        case .parameterList where opcode == 0x42: (range, writes) = (nil, true)  // UNMAP
        default: return nil
        }
        let lba = range?.lba ?? 0
        func refuse() -> Sense { writes ? target.writeFailed(lun: lun, lba: lba) : target.readFailed(lun: lun, lba: lba) }
        guard let image else {
            logger.error("LUN \(lun): the medium has no backing file; the command fails")
            return refuse()
        }
        if let change = image.change() {
            if reportedChanges[lun] != change {
                reportedChanges[lun] = change
                switch change {
                case .truncated(let now):
                    logger.error("LUN \(lun): \(image.path) shrank to \(now) bytes while served (it had \(image.size)); reads past its end fail. Load it again.")
                case .deleted:
                    logger.error("LUN \(lun): \(image.path) was deleted or replaced while served\(image.readOnly ? "" : "; the host's writes to it are refused"). Load it again.")
                }
                onStateChange?(driveList(), true)
            }
            switch change {
            case .truncated(let now):
                if let range {
                    let end = min(range.byteOffset + range.byteCount, image.size)
                    if end > now {
                        let lost = max(range.lba, now / UInt64(range.blockSize))
                        return writes ? target.writeFailed(lun: lun, lba: lost) : target.readFailed(lun: lun, lba: lost)
                    }
                }
            case .deleted:
                if writes { return refuse() }
            }
        }
        if writes, let failure = image.writeFailure {
            logger.error("LUN \(lun): refusing a write: \(failure) Load the medium again once the disk is healthy.")
            return refuse()
        }
        return nil
    }

    /// Data received from the host for the command in flight, `offset` bytes into its data phase.
    fileprivate func consume(_ bytes: UnsafeRawBufferPointer, at offset: Int, for cmd: inout ActiveCommand) {
        switch cmd.reply {
        case .write(let range, _):
            let lba = range.lba + UInt64(offset / range.blockSize)
            guard let image = cmd.image else {
                cmd.failure = target.writeFailed(lun: cmd.lun, lba: lba)
                return
            }
            do {
                try image.write(bytes, at: range.byteOffset + UInt64(offset))
                cmd.used += bytes.count
            } catch {
                logger.error("\(error)")
                cmd.failure = target.writeFailed(lun: cmd.lun, lba: lba)
            }
        case .compare(let range):
            guard let image = cmd.image else {
                cmd.failure = target.readFailed(lun: cmd.lun, lba: range.lba + UInt64(offset / range.blockSize))
                return
            }
            let medium = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<bytes.count])
            do {
                try image.read(into: medium, at: range.byteOffset + UInt64(offset))
            } catch {
                logger.error("\(error)")
                cmd.failure = target.readFailed(lun: cmd.lun, lba: range.lba + UInt64(offset / range.blockSize))
                return
            }
            if let index = (0..<bytes.count).first(where: { bytes[$0] != medium[$0] }) {
                cmd.failure = target.miscompare(lun: cmd.lun, lba: range.lba + UInt64((offset + index) / range.blockSize))
            } else {
                cmd.used += bytes.count
            }
        case .writeSame, .parameterList:
            cmd.parameters += bytes
            cmd.used += bytes.count
        default:
            break
        }
    }

    /// Everything the command needs from the host has arrived (the caller checked that it is all there and the
    /// command is not in a phase error): make it durable or act on it.
    fileprivate func finishDataOut(_ cmd: inout ActiveCommand) {
        guard let image = cmd.image else {
            cmd.failure = target.writeFailed(lun: cmd.lun, lba: 0)
            return
        }
        switch cmd.reply {
        case .write(let range, forceUnitAccess: true):
            synchronize(image, for: &cmd, lba: range.lba)
        case .writeSame(let range, let unmap):
            let block = cmd.parameters
            // The transport gathered exactly one block; anything else would repeat a wrong pattern (or none).
            guard block.count == range.blockSize, range.blockSize > 0 else {
                cmd.failure = target.failed(lun: cmd.lun, sense: .parameterListLengthError)
                return
            }
            if unmap && block.allSatisfy({ $0 == 0 }) {
                do { try image.punchHole(at: range.byteOffset, length: range.byteCount) } catch {
                    logger.error("\(error)")
                    cmd.failure = target.writeFailed(lun: cmd.lun, lba: range.lba)
                }
                return
            }
            let perChunk = scratch.count / block.count
            for index in 0..<perChunk {
                block.withUnsafeBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: scratch[index * block.count..<(index + 1) * block.count])
                        .copyMemory(from: source)
                }
            }
            cmd.work = .writeSame(range, done: 0, blocksPerChunk: UInt64(perChunk))
        case .parameterList:
            switch target.receivedParameters(cmd.parameters, cdb: cmd.cbw.cdb.withUnsafeBytes { CDB($0) }, lun: cmd.lun) {
            case .good:
                break
            case .checkCondition(let sense):
                cmd.failure = sense
            case .unmap(let ranges):
                for range in ranges {
                    do { try image.punchHole(at: range.byteOffset, length: range.byteCount) } catch {
                        logger.error("\(error)")
                        cmd.failure = target.writeFailed(lun: cmd.lun, lba: range.lba)
                        break
                    }
                }
            }
        default:
            break
        }
    }

    /// Commands with no data phase that still work on the medium: VERIFY without byte check, SYNCHRONIZE CACHE.
    fileprivate func runWithoutData(_ cmd: inout ActiveCommand) {
        guard let image = cmd.image else { return }
        switch cmd.reply {
        case .verifyMedium(let range):
            cmd.work = .verify(range, done: 0)
        case .synchronizeCache:
            synchronize(image, for: &cmd, lba: 0)
        default:
            break
        }
    }

    /// The command in flight has medium work left (`doPendingWork`): the event loop must not sleep.
    var hasPendingWork: Bool { command?.work != nil }

    /// Does the command's medium work for a slice of time (about 10 ms), then returns to the event loop; once it is
    /// all done, the command goes on to its CSW.
    func doPendingWork() {
        guard var cmd = command, let work = cmd.work else { return }
        let deadline = monotonicNanoseconds() + 10_000_000
        cmd.work = nil
        switch work {
        case .verify(let range, var done):
            while done < range.byteCount, cmd.failure == nil {
                let length = Int(min(UInt64(scratch.count), range.byteCount - done))
                do {
                    guard let image = cmd.image else { throw ImageError("The medium has no backing file.") }
                    try image.read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<length]),
                                   at: range.byteOffset + done)
                } catch {
                    logger.error("\(error)")
                    cmd.failure = target.readFailed(lun: cmd.lun, lba: range.lba + done / UInt64(range.blockSize))
                    break
                }
                done += UInt64(length)
                if done < range.byteCount && monotonicNanoseconds() >= deadline {
                    cmd.work = .verify(range, done: done)
                    break
                }
            }
        case .writeSame(let range, var done, let perChunk):
            while done < range.blocks, cmd.failure == nil {
                let blocks = min(perChunk, range.blocks - done)
                do {
                    guard let image = cmd.image else { throw ImageError("The medium has no backing file.") }
                    try image.write(UnsafeRawBufferPointer(rebasing: scratch[0..<Int(blocks) * range.blockSize]),
                                    at: range.byteOffset + done * UInt64(range.blockSize))
                } catch {
                    logger.error("\(error)")
                    cmd.failure = target.writeFailed(lun: cmd.lun, lba: range.lba + done)
                    break
                }
                done += blocks
                if done < range.blocks && monotonicNanoseconds() >= deadline {
                    cmd.work = .writeSame(range, done: done, blocksPerChunk: perChunk)
                    break
                }
            }
        }
        command = cmd
        if cmd.work == nil {
            advance()
            flush()
        }
    }

    /// Makes `image` durable before the command's CSW: an fdatasync through AIO, so the loop keeps serving ep0
    /// and the control socket while the disk works; synchronously where the kernel refuses that.
    fileprivate func synchronize(_ image: ImageFile, for cmd: inout ActiveCommand, lba: UInt64) {
        if let failure = image.writeFailure {
            logger.error("\(failure)")
            cmd.failure = target.writeFailed(lun: cmd.lun, lba: lba)
            return
        }
        if let slot = control.take() {
            claim(pool: control, slot: slot, role: .sync(lba: lba))
            var request: UnsafeMutablePointer<iocb>? = control.prepareDataSync(
                slot, fd: image.descriptor, eventFD: aio.eventFD)
            let taken = (try? aio.submit(&request, count: 1)) ?? 0
            if taken == 1 {
                cmd.syncing = true
                return
            }
            release(control.base + slot)
        }
        do { try image.synchronize() } catch {
            logger.error("\(error)")
            cmd.failure = target.writeFailed(lun: cmd.lun, lba: lba)
        }
    }

    /// READ CD data: each 2048-byte sector of the image becomes the layout the host asked for.
    fileprivate func fillCD(
        _ buffer: UnsafeMutableRawBufferPointer, range: BlockRange, layout: CDSectorLayout, at offset: Int,
        for cmd: inout ActiveCommand
    ) -> Bool {
        guard let image = cmd.image else {
            cmd.failure = target.readFailed(lun: cmd.lun, lba: range.lba)
            return false
        }
        let perSector = layout.bytesPerSector
        let user = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<2048])
        let sector = UnsafeMutableRawBufferPointer(rebasing: scratch[2048..<2048 + CDSector.rawSize])
        var position = 0
        while position < buffer.count {
            let index = (offset + position) / perSector
            let within = (offset + position) % perSector
            let lba = range.lba + UInt64(index)
            do {
                try image.read(into: user, at: lba * 2048)
            } catch {
                logger.error("\(error)")
                cmd.failure = target.readFailed(lun: cmd.lun, lba: lba)
                return false
            }
            CDSector.synthesizeMode1(lba: UInt32(truncatingIfNeeded: lba), userData: UnsafeRawBufferPointer(user),
                                     into: sector)
            // The layouts are slices of the raw sector: header at 12, user data at 16.
            let start = layout == .raw ? 0 : 12
            let source = UnsafeRawBufferPointer(rebasing: sector[start + within..<start + perSector])
            let count = min(source.count, buffer.count - position)
            UnsafeMutableRawBufferPointer(rebasing: buffer[position..<position + count])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<count]))
            position += count
        }
        return true
    }
}

// MARK: the operator's media changes

/// A drive as the control socket reports it.
struct DriveState: Codable, Sendable, Equatable {
    var lun: Int
    var cdrom: Bool
    var writable: Bool
    var image: String?
    var present: Bool
    var locked: Bool
    var trayOpen: Bool
    var queuedImage: String?
    /// What is wrong with the served image, in a sentence (deleted, shrunk, a failed write); nil when nothing is.
    var problem: String?
}

/// Where an image to load comes from.
enum ImageLocation: Equatable {
    /// A path the operator gave, opened as it is (symlinks followed).
    case path(String)
    /// A file of the image folder, opened without following any symlink on the way.
    case inFolder(String, name: String)

    var path: String {
        switch self {
        case .path(let path): path
        case .inFolder(let folder, let name): folder.hasSuffix("/") ? folder + name : folder + "/" + name
        }
    }
}

extension BulkOnlyFunction {
    /// Loads an image into `lun`. The file is opened first (errors are the operator's to see, and leave the drive as
    /// it was); it reaches the host as the target's medium model says: at once, or after the host answers an eject
    /// request. `expecting`: the device and inode the file must have (the image store's listing).
    func load(
        _ location: ImageLocation, lun: Int, readOnly: Bool, expecting: FileID? = nil
    ) throws(ControlFailure) -> MediumRequestResult {
        let path = location.path
        var status = stat()
        if stat(path, &status) == 0 {
            let id = FileID(status)
            for other in images.indices where other != lun {
                let files = [images[other], pendingImages[other]?.file].compactMap { $0 }
                if let shared = files.first(where: { $0.fileID == id }), !(shared.readOnly && readOnly) {
                    throw ControlFailure(
                        "image-in-use", "The image \(path) is in use by drive \(other); eject it there first.")
                }
            }
        }
        let file: ImageFile
        do {
            // The drive's own image again (the other way, or reloaded) takes over its lock rather than trip on it.
            let own = [images[lun], pendingImages[lun]?.file].compactMap { $0 }
            switch location {
            case .path(let path):
                file = try ImageFile(path: path, readOnly: readOnly, replacing: own, expecting: expecting)
            case .inFolder(let folder, let name):
                file = try ImageFile(
                    relativePath: name, inFolder: folder, readOnly: readOnly, replacing: own, expecting: expecting)
            }
        } catch {
            throw ControlFailure("image", error.description)
        }
        logger.info("LUN \(lun): operator loaded \(path)\(readOnly ? "" : " (writable)")")
        return insert(file, lun: lun)
    }

    /// Puts an opened file into the target as `lun`'s new medium.
    private func insert(_ file: ImageFile, lun: Int) -> MediumRequestResult {
        let id = nextMediumID
        nextMediumID += 1
        pendingImages[lun] = (id, file)
        let type = target.units[lun].type
        let medium = Medium(
            byteCount: file.size, readOnly: file.readOnly,
            supportsUnmap: type == .disk && file.supportsHolePunching, id: id)
        let result = target.insert(medium, lun: lun)
        if result == .ejectRequested { logger.info("LUN \(lun): eject requested from the host") }
        reconcileImages(lun: lun)
        return result
    }

    /// The drive's image opened again the other way (read-only or writable): a medium change for the host. Nothing
    /// changes when it cannot be reopened.
    func reload(lun: Int, readOnly: Bool) throws(ControlFailure) -> MediumRequestResult {
        // The latest the operator asked for: a change still queued for the host's eject, else what is served.
        guard let current = pendingImages[lun]?.file ?? images[lun] else { return .done }
        let others = [images[lun]].compactMap { $0 }.filter { $0 !== current }
        let file: ImageFile
        do { file = try current.reopened(readOnly: readOnly, alongside: others) } catch {
            throw ControlFailure("image", error.description)
        }
        logger.info("LUN \(lun): \(current.path) is \(readOnly ? "read-only" : "writable") now")
        return insert(file, lun: lun)
    }

    /// Takes the medium out of `lun`; without `force`, a host holding the lock is asked to eject it.
    func unload(lun: Int, force: Bool) -> MediumRequestResult {
        let result = target.eject(lun: lun, force: force)
        logger.info("LUN \(lun): operator eject\(force ? " (forced)" : "")\(result == .ejectRequested ? ": eject requested from the host" : "")")
        reconcileImages(lun: lun)
        return result
    }

    func drives() -> [DriveState] {
        target.units.enumerated().map { lun, unit in
            DriveState(
                lun: lun, cdrom: unit.type == .cdrom, writable: writable[lun],
                image: images[lun]?.path, present: unit.visibleMedium != nil, locked: unit.preventRemoval,
                trayOpen: unit.trayOpen,
                queuedImage: unit.queuedMedium != nil ? pendingImages[lun]?.file.path : nil,
                problem: images[lun].flatMap(problem(of:)))
        }
    }

    private func problem(of image: ImageFile) -> String? {
        if let failure = image.writeFailure {
            return "A write to the image failed (\(failure.description)); writes are refused until it is loaded again."
        }
        switch image.change() {
        case .truncated(let now)?:
            return "The image file shrank to \(now) bytes while served; reads past its end fail until it is loaded again."
        case .deleted?:
            return image.readOnly
                ? "The image file was deleted or replaced while served; load it again to serve the new file."
                : "The image file was deleted or replaced while served; the host's writes are refused until it is loaded again."
        case nil:
            return nil
        }
    }

    /// Makes the backing files follow the target's media, but never under a command that is using them: a change
    /// reaches the host at a command boundary. (A replaced file lives on while a transfer into its mapping is in
    /// flight: the transfer's slot holds it.)
    fileprivate func reconcileImages(lun: Int) {
        if let cmd = command, cmd.lun == lun, !cmd.cswQueued { return }
        let unit = target.units[lun]
        if let pending = pendingImages[lun], unit.medium?.id == pending.id {
            retire(images[lun])
            images[lun] = pending.file
            reportedChanges[lun] = nil
            pendingImages[lun] = nil
        } else if unit.medium == nil, images[lun] != nil {
            retire(images[lun])
            images[lun] = nil
            reportedChanges[lun] = nil
        }
        if let pending = pendingImages[lun], unit.queuedMedium?.id != pending.id, unit.medium?.id != pending.id {
            pendingImages[lun] = nil  // the operator's load was replaced or cancelled
        }
    }

    /// Makes every writable image durable (on shutdown).
    func synchronizeImages() {
        for image in images + pendingImages.map({ $0?.file }) { retire(image) }
    }

    /// Makes `lun` a CD/DVD or a flash drive, keeping its image (opened read-only for a CD/DVD). The host sees the
    /// new type only after it enumerates the device again. When the image cannot be reopened the needed way, nothing
    /// changes.
    func changeType(lun: Int, cdrom: Bool) throws(ControlFailure) {
        let type: DeviceType = cdrom ? .cdrom : .disk
        let readOnly = cdrom || !writable[lun]
        var file = images[lun]
        if let current = file, current.readOnly != readOnly {
            do { file = try current.reopened(readOnly: readOnly, alongside: [pendingImages[lun]?.file].compactMap { $0 }) } catch {
                throw ControlFailure("image", error.description)
            }
        }
        if cdrom { writable[lun] = false }
        if file !== images[lun] {
            retire(images[lun])
            images[lun] = file
        }
        reportedChanges[lun] = nil
        let medium = file.map {
            Medium(byteCount: $0.size, readOnly: $0.readOnly, supportsUnmap: type == .disk && $0.supportsHolePunching,
                   id: nextMediumID)
        }
        nextMediumID += 1
        pendingImages[lun] = nil
        let old = target.units[lun]
        var unit = LogicalUnit(
            type: type, medium: medium, identity: identities[lun], opticalMedia: .auto, serialNumber: old.serialNumber)
        unit.removable = old.removable
        unit.honoursFUA = old.honoursFUA
        target.units[lun] = unit
        logger.info("LUN \(lun): now a \(cdrom ? "CD/DVD" : "flash") drive")
    }

    private func retire(_ image: ImageFile?) {
        guard let image, !image.readOnly, image.writeFailure == nil else { return }
        do { try image.synchronize() } catch { logger.error("\(error)") }
    }
}
