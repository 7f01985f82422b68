import ArgumentParser
import Gadget
import Glibc
import Logging
import Daemon
import Foundation
import FunctionFS
import HTTPAPI
import ImageStore
import MassStorage
import SCSI

@main
struct UMSD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "umsd",
        abstract: "A userspace USB mass-storage gadget: disk and CD/DVD images served over FunctionFS.",
        subcommands: [Serve.self, Run.self, Drive.self, Image.self, Connect.self, Disconnect.self, Status.self, Trace.self]
    )
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve images to the USB host in the foreground, one LUN per --image.",
        discussion: """
            --cdrom and --rw apply to the --image before them. Example:
              umsd run --image installer.iso --cdrom --image flash.img --rw
            """
    )

    @Option(name: .customLong("image"), help: "An image to serve as the next LUN.")
    var images: [String] = []

    @Flag(name: .customLong("cdrom"), help: "Serve the preceding image as a CD/DVD-ROM (2048-byte blocks).")
    var cdromCount: Int

    @Flag(name: .customLong("rw"), help: "Let the host write the preceding image (disks only).")
    var rwCount: Int

    @Option(
        name: .customLong("media"),
        help: "For the preceding image, implies --cdrom: cd, dvd, or auto (DVD above 737,280,000 bytes).")
    var mediaTypes: [String] = []

    @Option(help: "INQUIRY strings of CD/DVD drives, as VENDOR:PRODUCT:REVISION (8, 16, 4 characters at most).")
    var cdInquiry: String?

    @Option(help: "INQUIRY strings of flash drives, as VENDOR:PRODUCT:REVISION.")
    var flashInquiry: String?

    @Option(help: "The USB device controller to bind to (default: the only one in /sys/class/udc).")
    var udc: String?

    @Option(help: "The gadget's directory name in configfs.")
    var gadgetName = "umsd"

    @Option(help: "USB vendor id, hex.")
    var vendorID = "1d6b"

    @Option(help: "USB product id, hex.")
    var productID = "0104"

    @Option(help: "USB serial number: at least 12 hex digits (default: derived from /etc/machine-id).")
    var serial: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Option(help: "KiB per bulk data request: 4 to 1024, a multiple of 4 (default: 16 at high speed, 64 at SuperSpeed).")
    var transferSize: Int?

    @Option(help: "Bulk data requests in flight at once: 2 to 64 (default 16).")
    var transferDepth = 16

    @Option(help: "How each CBW is awaited: blocking (default; a read that f_fs completes directly) or aio (an AIO read completed by f_fs's workqueue).")
    var cbwRead = "blocking"

    @Option(help: "The CPU the serving thread runs on: auto (the one it starts on, the default), none (not pinned) or a CPU number.")
    var cpu = "auto"

    /// The LUNs in command-line order, each with the flags that followed its --image.
    var luns: [LUNConfiguration] {
        (try? Self.orderedLUNs(Array(CommandLine.arguments.drop { $0 != "run" }.dropFirst()))) ?? []
    }

    func validate() throws {
        let luns = try Self.orderedLUNs(Array(CommandLine.arguments.drop { $0 != "run" }.dropFirst()))
        guard !luns.isEmpty else { throw ValidationError("Give at least one image with --image PATH.") }
        for lun in luns where lun.type == .cdrom && !lun.readOnly {
            throw ValidationError("\(lun.path ?? "--no-image"): a CD/DVD image is read-only; drop --rw or --cdrom.")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical.")
        }
        guard UInt16(vendorID, radix: 16) != nil, UInt16(productID, radix: 16) != nil else {
            throw ValidationError("--vendor-id and --product-id take four hex digits, like 1d6b.")
        }
        for text in [cdInquiry, flashInquiry].compactMap({ $0 }) where Identity(inquiryString: text) == nil {
            throw ValidationError("\(text): INQUIRY strings are VENDOR:PRODUCT:REVISION, at most 8, 16 and 4 printable characters.")
        }
        if let transferSize, !(4...1024).contains(transferSize) || transferSize % 4 != 0 {
            throw ValidationError("--transfer-size is in KiB: 4 to 1024, a multiple of 4 (whole pages).")
        }
        guard (2...64).contains(transferDepth) else {
            throw ValidationError("--transfer-depth is the number of requests in flight: 2 to 64.")
        }
        guard CPUPinning(cpu) != nil else {
            throw ValidationError("--cpu takes auto, none or a CPU number (0, 1, ...).")
        }
        guard CBWReadMode(rawValue: cbwRead) != nil else {
            throw ValidationError("--cbw-read takes blocking or aio.")
        }
        if let serial, serial.count < 12 || !serial.allSatisfy(\.isHexDigit) {
            throw ValidationError("--serial needs at least 12 hex digits (BOT 1.0 section 4.1.1).")
        }
    }

    /// Walks the arguments in order: `--cdrom` and `--rw` attach to the latest `--image`.
    static func orderedLUNs(_ arguments: [String]) throws -> [LUNConfiguration] {
        var luns: [LUNConfiguration] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--image" || argument.hasPrefix("--image=") {
                let path: String
                if argument == "--image" {
                    index += 1
                    guard index < arguments.count else { throw ValidationError("--image needs a path.") }
                    path = arguments[index]
                } else {
                    path = String(argument.dropFirst("--image=".count))
                }
                luns.append(LUNConfiguration(path: path, type: .disk, readOnly: true))
            } else if argument == "--cdrom" || argument == "--rw" {
                guard !luns.isEmpty else { throw ValidationError("\(argument) must follow the --image it applies to.") }
                if argument == "--cdrom" { luns[luns.count - 1].type = .cdrom } else { luns[luns.count - 1].readOnly = false }
            } else if argument == "--media" || argument.hasPrefix("--media=") {
                guard !luns.isEmpty else { throw ValidationError("--media must follow the --image it applies to.") }
                let value: String
                if argument == "--media" {
                    index += 1
                    value = index < arguments.count ? arguments[index] : ""
                } else {
                    value = String(argument.dropFirst("--media=".count))
                }
                guard let media = OpticalMedia(rawValue: value) else {
                    throw ValidationError("--media takes cd, dvd or auto, not \"\(value)\".")
                }
                luns[luns.count - 1].type = .cdrom
                luns[luns.count - 1].opticalMedia = media
            }
            index += 1
        }
        return luns
    }

    func run() throws {
        blockServerSignals()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "umsd")
        var gadget = GadgetDescription(serial: serial?.uppercased() ?? defaultSerial())
        gadget.name = gadgetName
        gadget.vendorID = UInt16(vendorID, radix: 16)!
        gadget.productID = UInt16(productID, radix: 16)!
        var luns = self.luns
        for index in luns.indices {
            let text = luns[index].type == .cdrom ? cdInquiry : flashInquiry
            luns[index].identity = text.flatMap { Identity(inquiryString: $0) }
        }
        var configuration = ServerConfiguration(luns: luns, gadget: gadget, controller: udc)
        configuration.transferSize = transferSize.map { $0 * 1024 }
        configuration.transferDepth = transferDepth
        configuration.cbwRead = CBWReadMode(rawValue: cbwRead)!
        configuration.cpu = CPUPinning(cpu)!
        do {
            try Server(configuration: configuration, logger: logger).run()
        } catch {
            printError("umsd: \(error.description)")
            throw ExitCode.failure
        }
    }
}

/// Blocks the signals the server reads through its signalfd (SIGINT, SIGTERM, SIGHUP) before any other thread
/// exists. Threads inherit the mask, so none of the threads started later (the HTTP service's, the runtime's) can
/// take such a signal with its default action, which would end umsd without unbinding or syncing anything.
func blockServerSignals() {
    var set = sigset_t()
    sigemptyset(&set)
    for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, signal) }
    pthread_sigmask(SIG_BLOCK, &set, nil)
}

/// A stable per-machine serial: 16 hex digits hashed (FNV-1a) from /etc/machine-id, so Windows keeps one device
/// instance per appliance without the machine id itself being exposed.
func defaultSerial() -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    var seed = Array("umsd".utf8)
    if let file = fopen("/etc/machine-id", "r") {
        var line = [CChar](repeating: 0, count: 64)
        if fgets(&line, 64, file) != nil { seed = line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) } }
        fclose(file)
    }
    for byte in seed {
        hash ^= UInt64(byte)
        hash &*= 0x100_0000_01b3
    }
    let digits = String(hash, radix: 16, uppercase: true)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

func printError(_ message: String) {
    let line = Array((message + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Where the running umsd listens.
struct ControlOptions: ParsableArguments {
    @Option(help: "The control socket (default: the daemon's /run/umsd/control.sock, else umsd run's /run/umsd/umsd.sock).")
    var socket: String?

    var path: String {
        if let socket { return socket }
        let daemon = "/run/umsd/control.sock"
        return access(daemon, F_OK) == 0 ? daemon : Server.controlSocketPath(gadget: "umsd")
    }

    /// Sends the requests in order; prints the refusal of the first that fails and exits non-zero.
    func send(_ requests: [DriveRequest]) throws -> DriveResponse {
        var last: DriveResponse?
        for request in requests {
            let reply: [UInt8]
            do {
                reply = try unixRequest(path: path, Array(try JSONEncoder().encode(request)))
            } catch {
                printError("umsd: umsd is not running (no answer on \(path)); start it with umsd serve or umsd run.")
                throw ExitCode.failure
            }
            guard let response = try? JSONDecoder().decode(DriveResponse.self, from: Data(reply)) else {
                printError("umsd: the answer from \(path) could not be read.")
                throw ExitCode.failure
            }
            if let error = response.error {
                printError("umsd: \(error.message)")
                throw ExitCode.failure
            }
            last = response
        }
        return last!
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

struct Drive: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or change a drive of a running umsd (options and output of PiKVM's kvmd-otgmsd).",
        discussion: """
            Examples:
              umsd drive                          show drive 0
              umsd drive list                     show every drive
              umsd drive -i 1 --set-image new.iso load an image into drive 1
              umsd drive -i 1 --set-cdrom 0       make drive 1 a flash drive (the host re-enumerates it)
              umsd drive --eject --unlock         take the medium out even if the host holds it
            """
    )

    @Argument(help: "list: show every drive.")
    var action: String?

    @Option(name: [.customShort("i"), .customLong("index")], help: "The drive (LUN) number.")
    var index = 0

    @Option(help: "Load this image into the drive (a name in the image folder, or a path).")
    var setImage: String?

    @Option(help: "1: make the drive a CD/DVD drive; 0: a flash drive.")
    var setCdrom: Int?

    @Option(help: "1: let the host write the drive (flash only); 0: read-only.")
    var setRw: Int?

    @Flag(help: "Take the medium out of the drive.")
    var eject = false

    @Flag(help: "Do it even if the host holds the medium (PREVENT); otherwise the host is asked to eject it.")
    var unlock = false

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var control: ControlOptions

    func validate() throws {
        if let action, action != "list" { throw ValidationError("Unknown action \"\(action)\": the only one is list.") }
        if eject && setImage != nil { throw ValidationError("Use either --set-image or --eject, not both.") }
        for (name, value) in [("--set-cdrom", setCdrom), ("--set-rw", setRw)] where value.map({ $0 != 0 && $0 != 1 }) ?? false {
            throw ValidationError("\(name) takes 0 or 1.")
        }
    }

    func run() throws {
        var requests: [DriveRequest] = []
        if setCdrom != nil || setRw != nil {
            requests.append(DriveRequest(command: "set", lun: index, cdrom: setCdrom.map { $0 == 1 }, rw: setRw.map { $0 == 1 }))
        }
        if eject || (unlock && setImage != nil) { requests.append(DriveRequest(command: "eject", lun: index, force: unlock)) }
        if let setImage {
            // A name stays a name (the daemon looks it up in its image folder); a relative path becomes absolute.
            let path =
                setImage.hasPrefix("/") || !setImage.contains("/")
                ? setImage : FileManager.default.currentDirectoryPath + "/" + setImage
            requests.append(DriveRequest(command: "load", lun: index, image: path))
        }
        if requests.isEmpty { requests.append(DriveRequest(command: "status")) }
        let response = try control.send(requests)
        let drives = response.drives ?? []
        if action == "list" {
            if json { return try printJSON(drives) }
            for drive in drives {
                let kind = drive.cdrom ? "CD/DVD" : "flash"
                print("\(drive.lun): \(kind) \(drive.writable ? "rw" : "ro") \(drive.image ?? "(no image)")\(drive.locked ? " [locked by host]" : "")")
            }
            return
        }
        guard let drive = drives.first(where: { $0.lun == index }) else {
            printError("umsd: there is no drive \(index).")
            throw ExitCode.failure
        }
        if json {
            try printJSON(drive)
        } else {
            print("Image file: \(drive.image ?? "")")
            print("CD/DVD flag: \(drive.cdrom ? "yes" : "no")")
            print("RW flag: \(drive.writable ? "yes" : "no")")
        }
        if response.result == "eject-requested" {
            printError("umsd: the host holds the medium of drive \(index); it was asked to eject it, and the change completes when it does (use --unlock to force).")
        }
    }
}

struct Connect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Connect the drives to the host (plug the cable in).")
    @OptionGroup var control: ControlOptions
    func run() throws { _ = try control.send([DriveRequest(command: "connect")]) }
}

struct Disconnect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Disconnect the drives from the host (pull the cable).")
    @OptionGroup var control: ControlOptions
    func run() throws { _ = try control.send([DriveRequest(command: "disconnect")]) }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show whether umsd is connected and what each drive holds.")
    @OptionGroup var control: ControlOptions
    @Flag(help: "Print JSON.") var json = false
    func run() throws {
        let response = try control.send([DriveRequest(command: "status")])
        if json { return try printJSON(response) }
        print("Connected: \((response.connected ?? false) ? "yes" : "no")")
        for drive in response.drives ?? [] {
            let kind = drive.cdrom ? "CD/DVD" : "flash"
            print("Drive \(drive.lun): \(kind), \(drive.writable ? "writable" : "read-only"), \(drive.image ?? "no image")\(drive.locked ? ", locked by the host" : "")")
        }
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the appliance daemon: the drives of the configuration, controlled live through umsd drive.",
        discussion: "Reads /etc/umsd/umsd.yaml and /etc/umsd/umsd.d/*.yaml (later files win); see Docs/configuration.md."
    )

    @Option(help: "The main configuration file; its folder's umsd.d/*.yaml are read after it.")
    var config = "/etc/umsd/umsd.yaml"

    func run() throws {
        blockServerSignals()
        let configuration: DaemonConfiguration
        do {
            configuration = try ConfigurationLoader.load(main: config)
        } catch {
            printError("umsd: \(error.description)")
            throw ExitCode.failure
        }
        LiveLogLevel.set(configuration.logLevel)
        LoggingSystem.bootstrap { label in LiveLevelLogHandler(inner: StreamLogHandler.standardError(label: label)) }
        let main = config
        // The HTTP service runs on Swift concurrency's threads beside the drive server, which holds this thread.
        var http: HTTPService?
        if configuration.enabled && configuration.http.enabled {
            do {
                http = try startHTTP(configuration)
            } catch {
                printError("umsd: \(error.message)")
                throw ExitCode.failure
            }
        }
        defer { http?.stop() }
        do {
            try Daemon.run(
                configuration, defaultSerial: defaultSerial(), logger: Logger(label: "umsd"),
                reload: { () throws(ConfigurationError) -> DaemonConfiguration in try ConfigurationLoader.load(main: main) },
                setLogLevel: { LiveLogLevel.set($0) })
        } catch {
            printError("umsd: \(error.description)")
            throw ExitCode.failure
        }
    }
}

/// The image store and the HTTP API on it, the drive side reached through the daemon's own control socket.
func startHTTP(_ configuration: DaemonConfiguration) throws(APIError) -> HTTPService {
    let hooks = configuration.storageHooks.map { WriteHook(part: $0.part, before: $0.before, after: $0.after) }
    let store: ImageStore
    do {
        store = try ImageStore(folder: configuration.imageFolder, hooks: hooks, logger: Logger(label: "umsd.images"))
    } catch {
        throw APIError(error.code, error.message)
    }
    let http = configuration.http
    var settings = HTTPSettings()
    settings.host = http.host
    settings.port = http.port
    settings.tokenFile = http.tokenFile
    if let user = http.basicAuthUser, let file = http.basicAuthPasswordFile {
        settings.basicAuth = .init(user: user, passwordFile: file)
    }
    if let certificate = http.tlsCertificate, let key = http.tlsKey {
        settings.tls = .init(certificate: certificate, key: key)
    }
    settings.maxUploadSize = http.maxUploadSize
    settings.rateLimit = http.rateLimit
    settings.maxConnections = http.maxConnections
    return try HTTPService.start(
        store: store, drives: SocketDriveControl(path: configuration.controlSocket), settings: settings,
        logger: Logger(label: "umsd.http"))
}

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow what the host does, live: one line per SCSI command (time, LUN, command, LBA, length, status, sense, latency).")
    @Option(name: [.customShort("i"), .customLong("index")], help: "Only this drive (LUN).") var index: Int?
    @Flag(help: "Print JSON lines.") var json = false
    @OptionGroup var control: ControlOptions

    func run() throws {
        let request = Array(try JSONEncoder().encode(DriveRequest(command: "trace", lun: index)))
        do {
            try streamUnixLines(path: control.path, request) { line in
                // Written straight to the descriptor, so a pipe (| grep, | tee) sees each line at once.
                if json {
                    writeLine(String(decoding: line, as: UTF8.self))
                } else if let event = try? JSONDecoder().decode(TraceEvent.self, from: Data(line)) {
                    let seconds = event.time.truncatingRemainder(dividingBy: 86400)
                    let clock = String(
                        format: "%02d:%02d:%06.3f", Int(seconds) / 3600, Int(seconds) / 60 % 60,
                        seconds.truncatingRemainder(dividingBy: 60))
                    writeLine("\(clock) \(event.line)")
                }
            }
        } catch {
            printError("umsd: umsd is not running (no answer on \(control.path)); start it with umsd serve or umsd run.")
            throw ExitCode.failure
        }
    }
}

func writeLine(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

import Synchronization

/// The daemon's log level, changeable on SIGHUP while every logger keeps its handler.
enum LiveLogLevel {
    private static let level = Atomic<UInt8>(2)
    private static let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]

    static func set(_ name: String) {
        level.store(UInt8(levels.firstIndex(of: Logger.Level(rawValue: name) ?? .info) ?? 2), ordering: .relaxed)
    }

    static var current: Logger.Level { levels[Int(level.load(ordering: .relaxed))] }
}

/// A stream handler whose level is `LiveLogLevel`'s.
struct LiveLevelLogHandler: LogHandler {
    var inner: StreamLogHandler

    var logLevel: Logger.Level {
        get { LiveLogLevel.current }
        set { LiveLogLevel.set(newValue.rawValue) }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        inner.log(event: event)
    }
}
