import CFunctionFSShim
import Backing
import Foundation
import FunctionFS
import Gadget
import Glibc
import Logging
import SCSI
import USBDescriptors

/// `umsd run`: one gadget, one Bulk-Only function, one LUN per image, served until SIGINT or SIGTERM.
public final class Server {
    private let configuration: ServerConfiguration
    private let logger: Logger
    private let images: [ImageFile?]

    /// Opens every image; nothing on the machine is changed yet.
    public init(configuration: ServerConfiguration, logger: Logger) throws(ServerError) {
        self.configuration = configuration
        self.logger = logger
        guard geteuid() == 0 else {
            throw ServerError("umsd must run as root: it creates a USB gadget in configfs and mounts FunctionFS.")
        }
        // Before any image is open: see umsd_start_address_space_guard (a SIGKILL mid-write must not leave the
        // kernel's f_fs deadlocked, the image locked and the gadget unremovable).
        if umsd_start_address_space_guard() < 0 {
            logger.warning("no address-space guard (\(String(cString: strerror(errno)))): a SIGKILL mid-write may need a reboot")
        }
        guard !configuration.luns.isEmpty else { throw ServerError("Give at least one image with --image.") }
        guard configuration.luns.count <= 16 else { throw ServerError("At most 16 images can be served (BOT LUNs 0-15).") }
        var images: [ImageFile?] = []
        for lun in configuration.luns {
            if lun.type == .cdrom && !lun.readOnly {
                throw ServerError("A CD/DVD image cannot be writable: drop --rw for \(lun.path ?? "it"), or serve it as a flash drive.")
            }
            guard let path = lun.path else {
                images.append(nil)
                continue
            }
            do {
                images.append(try ImageFile(path: path, readOnly: lun.readOnly))
            } catch {
                throw ServerError(error.description)
            }
        }
        self.images = images
    }

    /// Pins the calling thread, which serves the host, to the configured CPU. A CPU the operator named must exist;
    /// the starting CPU failing (a race with CPU hotplug) only costs the pinning.
    private func pinServingThread() throws(ServerError) {
        let cpu: Int
        switch configuration.cpu {
        case .none: return
        case .cpu(let number): cpu = number
        case .startingCPU:
            guard let current = ThreadAffinity.currentCPU else { return }
            cpu = current
        }
        do {
            try ThreadAffinity.pinCallingThread(to: cpu)
        } catch {
            if case .cpu = configuration.cpu {
                throw ServerError(
                    "CPU \(cpu) cannot run umsd (\(error)); \(ThreadAffinity.onlineCPUs) are online, numbered from 0.")
            }
            logger.warning("the serving thread could not be pinned to CPU \(cpu) (\(error)); it runs unpinned")
            return
        }
        logger.info("serving thread pinned to CPU \(cpu)")
    }

    /// Creates and binds the gadget, serves the host, and on SIGINT/SIGTERM removes every trace of it.
    public func run() throws(ServerError) {
        // First, before any gadget exists to clean up. Only this thread and the watcher it starts below inherit the
        // CPU: the serving path creates no other threads, and the daemon's HTTP service starts its own before this.
        try pinServingThread()
        let name = configuration.gadget.name
        // Joining an appliance's gadget: "auto" means the controller it is bound to now.
        let current = configuration.joinExistingGadget ? (try? GadgetConfigFS())?.controller(ofGadget: name) : nil
        let controller = try Preflight.check(controller: configuration.controller ?? current)
        let mountPoint = "\(configuration.runDirectory)/\(name)"

        let lock = try acquireLock("\(configuration.runDirectory)/\(name).lock", gadget: name)
        defer { close(lock) }

        let configFS: GadgetConfigFS
        do {
            configFS = try GadgetConfigFS()
            // A previous umsd killed without cleaning up leaves its gadget bound and its FunctionFS mounted.
            FunctionFSMount.unmount(mountPoint)
            if !configuration.joinExistingGadget, try configFS.removeLeftover(named: name) {
                logger.info("removed the gadget \(name) left over from an earlier run")
            }
        } catch {
            throw ServerError(error.description)
        }

        let signals: SignalDescriptor
        let loop: EventLoop
        let timer: FunctionFS.Timer
        let listener: UnixListener
        do {
            signals = try SignalDescriptor(signals: [SIGINT, SIGTERM, SIGHUP])
            loop = try EventLoop()
            timer = try FunctionFS.Timer()
            listener = try UnixListener(
                path: configuration.controlSocket
                    ?? Self.controlSocketPath(runDirectory: configuration.runDirectory, gadget: name))
        } catch {
            throw ServerError("The event loop could not be set up: \(error).")
        }

        let gadget: CreatedGadget
        do {
            gadget =
                configuration.joinExistingGadget
                ? try configFS.join(existing: name, functionInstance: configuration.gadget.functionInstance)
                : try configFS.create(configuration.gadget)
        } catch {
            throw ServerError(error.description)
        }
        defer {
            gadget.remove()
            logger.info(configuration.joinExistingGadget ? "umsd's function taken out of the gadget \(name)" : "gadget \(name) removed")
        }
        do {
            try FunctionFSMount.mount(instance: configuration.gadget.functionInstance, at: mountPoint)
        } catch {
            // Creating the function asks the kernel to load usb_f_fs; if the type is still unknown, it has none.
            if error.errno == ENODEV || !FunctionFSMount.isAvailable {
                throw ServerError("FunctionFS is not available in this kernel (modprobe usb_f_fs, or enable CONFIG_USB_FUNCTIONFS).")
            }
            throw ServerError("FunctionFS could not be mounted: \(error).")
        }
        defer {
            FunctionFSMount.unmount(mountPoint)
            rmdir(mountPoint)
        }

        let units = zip(configuration.luns, images).enumerated().map { index, pair in
            let (lun, image) = pair
            var unit = LogicalUnit(
                type: lun.type,
                medium: image.map {
                    Medium(
                        byteCount: $0.size, readOnly: $0.readOnly,
                        supportsUnmap: lun.type == .disk && $0.supportsHolePunching)
                },
                identity: lun.identity, opticalMedia: lun.opticalMedia,
                serialNumber: "\(configuration.gadget.serial)-\(index)")
            unit.removable = lun.removable
            unit.honoursFUA = lun.honoursFUA
            return unit
        }
        // With blocking CBW reads, a watcher thread cuts the read short whenever anything else needs the loop; f_fs
        // tells it about ep0 events through an eventfd given with the descriptors.
        // The control socket's clients are read on a thread of their own; complete requests arrive through a mailbox.
        let control: ControlChannel
        do {
            try listener.setPermissions(mode: configuration.controlSocketMode, group: configuration.controlSocketGroup)
        } catch {
            throw ServerError("The control socket's permissions could not be set: \(error).")
        }
        do { control = try ControlChannel(listener: listener) } catch {
            throw ServerError("The control socket could not be served: \(error).")
        }
        defer { control.stop() }
        let reader: InterruptibleRead?
        do {
            reader =
                configuration.cbwRead == .blocking
                ? try InterruptibleRead(interruptedBy: [signals.fd, timer.fd, control.wakeFD]) : nil
        } catch {
            throw ServerError("The event loop could not be set up: \(error).")
        }
        defer { reader?.stop() }
        let function: BulkOnlyFunction
        // Declared outside the do so the endpoint files close (deinit) before the unmount above runs.
        var endpoints: FunctionFSEndpoints?
        do {
            let opened = try FunctionFSEndpoints(directory: mountPoint)
            endpoints = opened
            try opened.writeDescriptors(
                BulkOnlyInterface().functionFSDescriptors(eventFD: reader?.ep0EventFD), strings: functionFSStrings(["Mass Storage"]))
            function = try BulkOnlyFunction(
                endpoints: opened, images: images, target: Target(units: units),
                writable: configuration.luns.map { !$0.readOnly }, identities: configuration.luns.map(\.identity),
                transferSize: configuration.transferSize, depth: configuration.transferDepth,
                blockingCBWRead: configuration.cbwRead == .blocking, logger: logger)
            try loop.watch(opened.ep0, token: Token.ep0)
            try loop.watch(function.completionFD, token: Token.completions, edgeTriggered: true)
            try loop.watch(signals.fd, token: Token.signals)
            try loop.watch(timer.fd, token: Token.timer)
            try loop.watch(control.wakeFD, token: Token.control)
        } catch {
            throw ServerError("FunctionFS could not be set up: \(error).")
        }
        function.onTimerChange = { interval in timer.schedule(everyMilliseconds: interval) }
        function.imageFolder = configuration.imageFolder
        function.onStateChange = configuration.onStateChange

        var connected = configuration.startConnected
        if connected {
            do {
                try gadget.bind(to: controller)
            } catch {
                throw ServerError(error.description)
            }
        }
        for (index, lun) in configuration.luns.enumerated() {
            let image = images[index].map { "\($0.path) (\($0.size) bytes)" } ?? "no image"
            logger.info(
                "LUN \(index): \(lun.type == .cdrom ? "CD/DVD" : "flash") \(lun.readOnly ? "read-only" : "writable"), \(image)")
        }
        logger.info(
            "serving on \(controller) as \(hex(configuration.gadget.vendorID)):\(hex(configuration.gadget.productID)) serial \(configuration.gadget.serial)"
        )
        configuration.onReady?()

        /// Unplugs and replugs the device, so the host enumerates it again (after a drive changed type).
        func reconnect() throws(GadgetError) {
            gadget.unbind()
            try gadget.bind(to: controller)
        }

        serve: while true {
            // Idle between commands: sleep in the CBW read itself. Cut short, the loop below looks (without
            // waiting) at what is ready, and the read is tried again.
            var idle = false
            if let reader, function.wantsBlockingCBWRead {
                if function.readCBW(with: reader) { continue }
                idle = true
            }
            // Long medium work (VERIFY, WRITE SAME) runs in slices between looks at everything else.
            let working = function.hasPendingWork
            if !idle && !working { logger.trace("waiting: \(function.waitState)") }
            let ready: Int
            do { ready = try loop.wait(timeoutMilliseconds: idle || working ? 0 : -1) } catch {
                throw ServerError("The event loop failed: \(error).")
            }
            defer { if function.hasPendingWork { function.doPendingWork() } }
            for index in 0..<ready {
                switch loop.token(index) {
                case Token.ep0:
                    do throws(SystemError) {
                        for event in try endpoints!.readEvents() { function.handle(event) }
                    } catch where error.errno == EIDRM || error.errno == EL2HLT {
                        // f_fs cancelled a SETUP the loop had not read yet (the host gave up on it): nothing to do.
                        logger.debug("ep0 event read: \(error)")
                    } catch {
                        throw ServerError("Reading FunctionFS events failed: \(error).")
                    }
                case Token.completions:
                    function.reapCompletions()
                case Token.signals:
                    let received = signals.take()
                    if received.contains(SIGINT) || received.contains(SIGTERM) {
                        logger.info("signal received, stopping")
                        break serve
                    }
                    if received.contains(SIGHUP) { configuration.onReload?() }
                case Token.timer:
                    timer.acknowledge()
                    function.timerFired()
                case Token.control:
                    for incoming in control.takeRequests() {
                        if let request = try? JSONDecoder().decode(DriveRequest.self, from: Data(incoming.line)),
                            request.command == "trace"
                        {
                            // The connection stays open (non-blocking): one JSON line per host command from now on.
                            function.subscribeTrace(fd: incoming.client, lun: request.lun)
                            continue
                        }
                        let reply = function.handleControl(incoming.line, peerIsRoot: incoming.peerIsRoot) {
                            request throws(ControlFailure) -> Void in
                            switch request.command {
                            case "connect" where !connected:
                                do throws(GadgetError) { try gadget.bind(to: controller) } catch {
                                    throw ControlFailure("gadget", error.description)
                                }
                                connected = true
                                logger.info("connected to the host")
                            case "disconnect" where connected:
                                gadget.unbind()
                                connected = false
                                logger.info("disconnected from the host")
                            case "reconnect" where connected && configuration.reenumerateOnTypeChange:
                                logger.info("re-enumerating so the host sees the drive's new type")
                                do throws(GadgetError) { try reconnect() } catch {
                                    throw ControlFailure("gadget", error.description)
                                }
                            default:
                                break
                            }
                        } connected: { connected }
                        control.respond(to: incoming, reply)
                        function.flush()
                    }
                default:
                    break
                }
            }
        }

        gadget.unbind()
        function.synchronizeImages()
        endpoints = nil
        _ = function
    }

    private enum Token {
        static let ep0: UInt64 = 1
        static let completions: UInt64 = 2
        static let signals: UInt64 = 3
        static let timer: UInt64 = 4
        static let control: UInt64 = 5
    }

    /// Where `umsd run` listens for `umsd drive`.
    public static func controlSocketPath(runDirectory: String = "/run/umsd", gadget: String) -> String {
        "\(runDirectory)/\(gadget).sock"
    }

    private func acquireLock(_ path: String, gadget: String) throws(ServerError) -> Int32 {
        do { try makeDirectories(configuration.runDirectory) } catch {
            throw ServerError("The run directory could not be created: \(error).")
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ServerError("The lock file \(path) could not be opened: \(String(cString: strerror(errno))).") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ServerError("Another umsd is already serving the gadget \(gadget).")
        }
        return fd
    }
}

private func hex(_ value: UInt16) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 4 - digits.count) + digits
}
