import Foundation
import FunctionFS
import Glibc
import Gadget
import Logging
import MassStorage
import SCSI

/// What the daemon keeps across restarts: which image is in which drive, as what, and whether it is connected.
public struct SavedState: Codable, Sendable, Equatable {
    public struct Drive: Codable, Sendable, Equatable {
        public var image: String?
        public var cdrom: Bool
        public var writable: Bool
    }

    public var drives: [Drive]
    public var connected: Bool

    /// Reads the state file; nil when there is none or it cannot be read (the daemon then starts from the
    /// configuration alone).
    public static func read(_ path: String) -> SavedState? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(SavedState.self, from: data)
    }

    /// Writes the state file atomically (a temporary file renamed over it), so a crash never leaves half a file.
    public func write(_ path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        // Only root reads what umsd keeps: a folder it makes is 0700.
        try FileManager.default.createDirectory(
            atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// `umsd serve`: the appliance daemon. It turns the configuration (and the saved state) into a server and runs it.
public enum Daemon {
    /// The server configuration for `configuration`, with the drives as `saved` left them where it still fits.
    public static func serverConfiguration(
        _ configuration: DaemonConfiguration, saved: SavedState?, defaultSerial: String, logger: Logger
    ) -> ServerConfiguration {
        var luns: [LUNConfiguration] = []
        for (index, drive) in configuration.drives.enumerated() {
            var cdrom = drive.media.isOptical
            var writable = drive.writable
            var image: String?
            if let saved, index < saved.drives.count {
                let state = saved.drives[index]
                cdrom = state.cdrom
                // The configuration's `writable: false` is the operator's word: a drive saved writable stays read-only.
                writable = state.writable && !state.cdrom && drive.writable
                if let path = state.image {
                    if let problem = savedImageProblem(path, readOnly: !writable) {
                        // One image that no longer opens must not keep every drive (and the API) down.
                        logger.warning("drive \(index): the saved image \(path) \(problem); the drive starts empty")
                    } else {
                        image = path
                    }
                }
            }
            let optical: OpticalMedia =
                switch drive.media {
                case .cd: .cd
                case .dvd: .dvd
                case .auto, .flash: .auto
                }
            var lun = LUNConfiguration(
                path: image, type: cdrom ? .cdrom : .disk, readOnly: !writable, opticalMedia: optical,
                identity: cdrom ? drive.inquiry.cd : drive.inquiry.flash)
            lun.removable = drive.removable
            lun.honoursFUA = drive.fua
            luns.append(lun)
        }
        var gadget = GadgetDescription(serial: configuration.gadget.serial ?? defaultSerial)
        gadget.name = configuration.gadget.name
        gadget.vendorID = configuration.gadget.vendorID
        gadget.productID = configuration.gadget.productID
        gadget.manufacturer = configuration.gadget.manufacturer
        gadget.product = configuration.gadget.product
        gadget.maxPowerMilliamps = configuration.gadget.maxPowerMilliamps
        gadget.functionInstance = configuration.gadget.function

        var server = ServerConfiguration(luns: luns, gadget: gadget, controller: configuration.gadget.udc)
        server.controlSocket = configuration.controlSocket
        server.controlSocketMode = configuration.controlSocketMode
        server.controlSocketGroup = configuration.controlSocketGroup
        server.reenumerateOnTypeChange = configuration.gadget.reenumerateOnTypeChange
        server.imageFolder = configuration.imageFolder
        server.startConnected = saved?.connected ?? true
        server.joinExistingGadget = configuration.gadget.mode == .existing
        server.cpu = configuration.cpu
        return server
    }

    /// Why the saved image at `path` cannot be served the way the drive would open it (for writing unless
    /// `readOnly`, locked shared or exclusive as the drive side locks it), or nil when it can. The file is only
    /// opened and closed again: the server opens it for real right after.
    /// The corresponding C calls are `open`, `fstat` and `flock`.
    static func savedImageProblem(_ path: String, readOnly: Bool) -> String? {
        // O_NONBLOCK: a FIFO left at the path must not hold startup; it is refused below as not a file.
        let fd = open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { return "is gone" }
            return "cannot be opened \(readOnly ? "for reading" : "for writing") (\(String(cString: strerror(code))))"
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return "cannot be examined (\(String(cString: strerror(errno))))" }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFBLK else { return "is not a regular file or block device" }
        if kind == S_IFREG && st.st_size == 0 { return "is empty" }
        guard flock(fd, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0 else {
            return "is in use by another program (it holds a lock on it)"
        }
        return nil
    }

    /// Runs the daemon until SIGTERM; errors are one sentence. On SIGHUP `reload` is asked for the configuration
    /// again: the log level changes live (through `setLogLevel`), anything else is reported as needing a restart.
    public static func run(
        _ configuration: DaemonConfiguration, defaultSerial: String, logger: Logger,
        reload: @escaping @Sendable () throws(ConfigurationError) -> DaemonConfiguration = { DaemonConfiguration() },
        setLogLevel: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(ServerError) {
        guard configuration.enabled else {
            logger.info("mass storage is turned off (enabled: false)")
            notifySystemd("READY=1\nSTATUS=mass storage turned off")
            return
        }
        let saved = configuration.persistState ? SavedState.read(configuration.stateFile) : nil
        var server = serverConfiguration(configuration, saved: saved, defaultSerial: defaultSerial, logger: logger)
        server.onReady = { notifySystemd("READY=1") }
        server.onReload = {
            let log = Logger(label: "umsd")
            notifySystemd("RELOADING=1")
            defer { notifySystemd("READY=1") }
            let fresh: DaemonConfiguration
            do throws(ConfigurationError) { fresh = try reload() } catch {
                log.error("configuration not reloaded: \(error.description)")
                return
            }
            setLogLevel(fresh.logLevel)
            var changed = fresh
            changed.logLevel = configuration.logLevel
            if changed != configuration {
                log.warning("the configuration changed beyond the log level: restart umsd to apply it")
            } else {
                log.info("configuration reloaded (log level \(fresh.logLevel))")
            }
        }
        if configuration.persistState {
            let path = configuration.stateFile
            server.onStateChange = { drives, connected in
                let state = SavedState(
                    drives: drives.map { SavedState.Drive(image: $0.image, cdrom: $0.cdrom, writable: $0.writable) },
                    connected: connected)
                do { try state.write(path) } catch {
                    Logger(label: "umsd").error("the state could not be saved to \(path): \(error)")
                }
            }
        }
        try Server(configuration: server, logger: logger).run()
        notifySystemd("STOPPING=1")
    }
}
