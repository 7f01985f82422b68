import Backing
import Gadget
import MassStorage
import SCSI
import Yams

/// Reads the configuration: a main file, then every `*.yaml` of a drop-in folder in name order, each merged over the
/// one before (mappings key by key, anything else replaced). Each file is checked on its own first, so an unknown
/// key or a bad value is reported with the file it is in.
public enum ConfigurationLoader {
    /// The documents to read, in order: (file name, YAML text).
    public static func parse(_ documents: [(file: String, text: String)]) throws(ConfigurationError)
        -> DaemonConfiguration
    {
        var merged: [String: Any] = [:]
        for (file, text) in documents {
            let tree = try load(file: file, text: text)
            // Validates the file alone: keys, types and ranges. Rules across keys wait for the merged whole,
            // since another file may set the other key.
            _ = try decode(tree, file: file, whole: false)
            merged = deepMerge(merged, tree)
        }
        let files = documents.map(\.file)
        let name = files.count == 1 ? files[0] : "the configuration merged from \(files.joined(separator: ", "))"
        return try decode(merged, file: files.isEmpty ? "(defaults)" : name, whole: true)
    }

    private static func load(file: String, text: String) throws(ConfigurationError) -> [String: Any] {
        let value: Any?
        do {
            value = try Yams.load(yaml: text, .default, constructor)
        } catch {
            throw ConfigurationError(file: file, key: "", reason: "not valid YAML (\(error))")
        }
        guard let value else { return [:] }
        guard let table = value as? [String: Any] else {
            throw ConfigurationError(file: file, key: "", reason: "the top level must be a mapping of keys")
        }
        return table
    }

    /// Yams' constructor, except that a plain number written with a leading zero (`0660`, `0o660`) stays the text
    /// it was: YAML 1.1 reads it as octal and 1.2 as decimal, so only the key that reads it knows what it means
    /// (`control.mode` reads it as octal permissions, a USB id as hex).
    private static var constructor: Constructor {
        var scalars = Constructor.defaultScalarMap
        let integer = scalars[.int]
        scalars[.int] = { scalar in
            let text = scalar.string
            let digits = text.hasPrefix("0o") ? text.dropFirst(2) : text.dropFirst()
            if scalar.style == .plain || scalar.style == .any, text.hasPrefix("0"), text.count > 1,
                digits.allSatisfy({ $0.isASCII && $0.isNumber })
            {
                return text
            }
            return integer?(scalar)
        }
        return Constructor(scalars)
    }

    static func deepMerge(_ base: [String: Any], _ overlay: [String: Any]) -> [String: Any] {
        var result = base
        for (key, value) in overlay {
            if let inner = value as? [String: Any], let existing = result[key] as? [String: Any] {
                result[key] = deepMerge(existing, inner)
            } else {
                result[key] = value
            }
        }
        return result
    }

    private static func decode(_ tree: [String: Any], file: String, whole: Bool) throws(ConfigurationError)
        -> DaemonConfiguration
    {
        let reader = Reader(file: file)
        var configuration = DaemonConfiguration()
        let top = try reader.table(tree, "", keys: ["enabled", "gadget", "drives", "storage", "http", "control", "state", "log", "cpu"])
        if let value = top["enabled"] { configuration.enabled = try reader.bool(value, "enabled") }

        if let value = top["gadget"] {
            let gadget = try reader.table(
                value, "gadget",
                keys: [
                    "mode", "name", "vendor_id", "product_id", "manufacturer", "product", "serial", "udc",
                    "max_power_ma", "function", "reenumerate_on_type_change",
                ])
            var g = configuration.gadget
            if let v = gadget["mode"] { g.mode = try reader.choice(v, "gadget.mode", GadgetSettings.Mode.init) }
            if let v = gadget["name"] { g.name = try reader.name(v, "gadget.name") }
            if let v = gadget["vendor_id"] { g.vendorID = try reader.id16(v, "gadget.vendor_id") }
            if let v = gadget["product_id"] { g.productID = try reader.id16(v, "gadget.product_id") }
            if let v = gadget["manufacturer"] { g.manufacturer = try reader.text(v, "gadget.manufacturer", max: 126) }
            if let v = gadget["product"] { g.product = try reader.text(v, "gadget.product", max: 126) }
            if let v = gadget["serial"] {
                let serial = try reader.text(v, "gadget.serial", max: 126)
                if serial != "auto" {
                    guard serial.count >= 12, serial.allSatisfy(\.isHexDigit) else {
                        throw reader.error("gadget.serial", "must be \"auto\" or at least 12 hex digits (BOT 1.0 §4.1.1)")
                    }
                    g.serial = serial.uppercased()
                }
            }
            if let v = gadget["udc"] {
                let udc = try reader.text(v, "gadget.udc", max: 64)
                g.udc = udc == "auto" ? nil : udc
            }
            if let v = gadget["max_power_ma"] { g.maxPowerMilliamps = try reader.integer(v, "gadget.max_power_ma", 0...900) }
            if let v = gadget["function"] { g.function = try reader.name(v, "gadget.function") }
            if let v = gadget["reenumerate_on_type_change"] {
                g.reenumerateOnTypeChange = try reader.bool(v, "gadget.reenumerate_on_type_change")
            }
            configuration.gadget = g
        }

        if let value = top["drives"] {
            let drives = try reader.table(value, "drives", keys: ["count", "default", "list"])
            var defaults = DriveSettings()
            if let v = drives["default"] { defaults = try reader.drive(v, "drives.default", over: defaults) }
            let count = try drives["count"].map { v throws(ConfigurationError) in try reader.integer(v, "drives.count", 1...16) } ?? 1
            var list = Array(repeating: defaults, count: count)
            if let v = drives["list"] {
                guard let items = v as? [Any] else { throw reader.error("drives.list", "must be a list of drives") }
                if whole && items.count > count {
                    throw reader.error("drives.list", "has \(items.count) drives but drives.count is \(count)")
                }
                for (index, item) in items.enumerated() {
                    let drive = try reader.drive(item, "drives.list[\(index)]", over: defaults)
                    if index < count { list[index] = drive }
                }
            }
            configuration.drives = list
        }

        if let value = top["storage"] {
            let storage = try reader.table(value, "storage", keys: ["images", "hooks"])
            if let v = storage["images"] { configuration.imageFolder = try reader.path(v, "storage.images") }
            if let v = storage["hooks"] { configuration.storageHooks = try reader.hooks(v, "storage.hooks") }
        }
        if let value = top["http"] { configuration.http = try reader.http(value, "http", over: configuration.http) }
        if let value = top["control"] {
            let control = try reader.table(value, "control", keys: ["socket", "mode", "group"])
            if let v = control["socket"] { configuration.controlSocket = try reader.path(v, "control.socket") }
            if let v = control["mode"] { configuration.controlSocketMode = try reader.mode(v, "control.mode") }
            if let v = control["group"] { configuration.controlSocketGroup = try reader.name(v, "control.group") }
        }
        if let value = top["state"] {
            let state = try reader.table(value, "state", keys: ["persist", "file"])
            if let v = state["persist"] { configuration.persistState = try reader.bool(v, "state.persist") }
            if let v = state["file"] { configuration.stateFile = try reader.path(v, "state.file") }
        }
        if let value = top["cpu"] {
            let pinning: CPUPinning? =
                switch value {
                case is Bool: nil
                case let number as Int: CPUPinning(String(number))
                case let text as String: CPUPinning(text)
                default: nil
                }
            guard let pinning else {
                throw reader.error("cpu", "must be auto, none or a CPU number from 0")
            }
            configuration.cpu = pinning
        }
        if let value = top["log"] {
            let log = try reader.table(value, "log", keys: ["level"])
            if let v = log["level"] {
                let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
                let level = try reader.text(v, "log.level", max: 16)
                guard levels.contains(level) else {
                    throw reader.error("log.level", "must be one of \(levels.joined(separator: ", "))")
                }
                configuration.logLevel = level
            }
        }
        if whole {
            let http = configuration.http
            if (http.tlsCertificate == nil) != (http.tlsKey == nil) {
                throw reader.error("http.tls", "needs both certificate and key, or neither")
            }
            if (http.basicAuthUser == nil) != (http.basicAuthPasswordFile == nil) {
                throw reader.error("http.basic_auth", "needs both user and password_file, or neither")
            }
            for (index, drive) in configuration.drives.enumerated() where drive.writable && drive.media.isOptical {
                throw reader.error(
                    "drives.list[\(index)]", "a CD/DVD drive cannot be writable: set media: flash or writable: false")
            }
        }
        return configuration
    }
}

/// Typed access to a YAML tree, with errors that name the file and the key.
private struct Reader {
    let file: String

    func error(_ key: String, _ reason: String) -> ConfigurationError {
        ConfigurationError(file: file, key: key, reason: reason)
    }

    func table(_ value: Any, _ key: String, keys allowed: Set<String>) throws(ConfigurationError) -> [String: Any] {
        guard let table = value as? [String: Any] else {
            throw error(key.isEmpty ? "(top level)" : key, "must be a mapping of keys")
        }
        for name in table.keys.sorted() where !allowed.contains(name) {
            let full = key.isEmpty ? name : "\(key).\(name)"
            throw error(full, "unknown key (known here: \(allowed.sorted().joined(separator: ", ")))")
        }
        return table
    }

    func bool(_ value: Any, _ key: String) throws(ConfigurationError) -> Bool {
        guard let bool = value as? Bool else { throw error(key, "must be true or false") }
        return bool
    }

    func integer(_ value: Any, _ key: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let number = value as? Int, !(value is Bool), range.contains(number) else {
            throw error(key, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    func text(_ value: Any, _ key: String, max: Int) throws(ConfigurationError) -> String {
        guard let text = value as? String else { throw error(key, "must be a string") }
        guard text.count <= max, text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw error(key, "must be at most \(max) printable characters")
        }
        return text
    }

    /// A configfs-safe name: letters, digits, '.', '_' and '-'.
    func name(_ value: Any, _ key: String) throws(ConfigurationError) -> String {
        let text = try self.text(value, key, max: 64)
        guard !text.isEmpty, !text.hasPrefix("."), text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
            throw error(key, "must be a name of letters, digits, '.', '_' and '-'")
        }
        return text
    }

    /// An absolute path in one spelling: `//`, `.` and a trailing `/` dropped, `..` taken back (by the text, as
    /// the operator reads it), so that paths compared later compare what they name.
    func path(_ value: Any, _ key: String) throws(ConfigurationError) -> String {
        let text = try self.text(value, key, max: 4096)
        guard text.hasPrefix("/") else { throw error(key, "must be an absolute path") }
        return lexicallyNormalised(text)
    }

    func id16(_ value: Any, _ key: String) throws(ConfigurationError) -> UInt16 {
        if let number = value as? Int, !(value is Bool), let id = UInt16(exactly: number) { return id }
        if let text = value as? String {
            let digits = text.hasPrefix("0x") || text.hasPrefix("0X") ? String(text.dropFirst(2)) : text
            if let id = UInt16(digits, radix: 16) { return id }
        }
        throw error(key, "must be a 16-bit USB id such as 0x1d6b")
    }

    /// Permissions, always octal: "0660", "660", "0o660", 0660 or 660 all mean rw-rw----. A number is read by its
    /// digits, never as decimal (440 is r--r-----, not 0o670).
    func mode(_ value: Any, _ key: String) throws(ConfigurationError) -> UInt16 {
        var digits: Substring?
        if let number = value as? Int, !(value is Bool), number >= 0 { digits = Substring(String(number)) }
        if let text = value as? String { digits = text.hasPrefix("0o") ? text.dropFirst(2) : Substring(text) }
        guard let digits, !digits.isEmpty, digits.allSatisfy({ ("0"..."7").contains($0) }),
            let mode = UInt16(digits, radix: 8), mode <= 0o777
        else {
            throw error(key, "must be octal file permissions such as \"0660\" or 660 (digits 0 to 7, at most 777)")
        }
        return mode
    }

    func choice<T>(_ value: Any, _ key: String, _ make: (String) -> T?) throws(ConfigurationError) -> T {
        guard let text = value as? String, let chosen = make(text) else {
            throw error(key, "has an unknown value \(value)")
        }
        return chosen
    }

    func inquiry(_ value: Any, _ key: String, over base: Identity) throws(ConfigurationError) -> Identity {
        let table = try self.table(value, key, keys: ["vendor", "product", "revision"])
        var identity = base
        if let v = table["vendor"] { identity.vendor = try text(v, "\(key).vendor", max: 8) }
        if let v = table["product"] { identity.product = try text(v, "\(key).product", max: 16) }
        if let v = table["revision"] { identity.revision = try text(v, "\(key).revision", max: 4) }
        return identity
    }

    /// A size in bytes: a whole number, or a string with K, M, G or T (powers of 1024), e.g. "64G".
    func size(_ value: Any, _ key: String) throws(ConfigurationError) -> Int64 {
        if let number = value as? Int, !(value is Bool), number > 0 { return Int64(number) }
        if let text = value as? String {
            let digits = text.prefix { $0.isASCII && $0.isNumber }
            var unit = text.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).uppercased()
            if unit.hasSuffix("IB") { unit.removeLast(2) } else if unit.hasSuffix("B") { unit.removeLast() }
            let shifts: [String: Int64] = ["": 0, "K": 10, "M": 20, "G": 30, "T": 40]
            if let number = Int64(digits), number > 0, let shift = shifts[unit], number <= Int64.max >> shift {
                return number << shift
            }
        }
        throw error(key, "must be a size such as 1073741824 or \"64G\"")
    }

    func http(_ value: Any, _ key: String, over base: HTTPConfiguration) throws(ConfigurationError) -> HTTPConfiguration {
        let table = try self.table(
            value, key,
            keys: [
                "enabled", "listen", "token_file", "basic_auth", "tls", "max_upload_size", "rate_limit",
                "max_connections",
            ])
        var http = base
        if let v = table["enabled"] { http.enabled = try bool(v, "\(key).enabled") }
        if let v = table["listen"] {
            let text = try self.text(v, "\(key).listen", max: 300)
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (1...65535).contains(port)
            else { throw error("\(key).listen", "must be HOST:PORT, such as 127.0.0.1:8780 or [::]:8780") }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty, !host.contains("[") else {
                throw error("\(key).listen", "must be HOST:PORT, such as 127.0.0.1:8780 or [::]:8780")
            }
            http.host = host
            http.port = port
        }
        if let v = table["token_file"] { http.tokenFile = try path(v, "\(key).token_file") }
        if let v = table["basic_auth"] {
            let auth = try self.table(v, "\(key).basic_auth", keys: ["user", "password_file"])
            if let user = auth["user"] {
                let name = try text(user, "\(key).basic_auth.user", max: 64)
                guard !name.isEmpty, !name.contains(":") else {
                    throw error("\(key).basic_auth.user", "must be a name without ':'")
                }
                http.basicAuthUser = name
            }
            if let file = auth["password_file"] { http.basicAuthPasswordFile = try path(file, "\(key).basic_auth.password_file") }
        }
        if let v = table["tls"] {
            let tls = try self.table(v, "\(key).tls", keys: ["certificate", "key"])
            if let file = tls["certificate"] { http.tlsCertificate = try path(file, "\(key).tls.certificate") }
            if let file = tls["key"] { http.tlsKey = try path(file, "\(key).tls.key") }
        }
        if let v = table["max_upload_size"] { http.maxUploadSize = try size(v, "\(key).max_upload_size") }
        if let v = table["rate_limit"] { http.rateLimit = try integer(v, "\(key).rate_limit", 0...100_000) }
        if let v = table["max_connections"] {
            http.maxConnections = try integer(v, "\(key).max_connections", 1...100_000)
        }
        return http
    }

    func hooks(_ value: Any, _ key: String) throws(ConfigurationError) -> [StorageHook] {
        guard let items = value as? [Any] else { throw error(key, "must be a list of {part, before, after}") }
        var hooks: [StorageHook] = []
        for (index, item) in items.enumerated() {
            let itemKey = "\(key)[\(index)]"
            let table = try self.table(item, itemKey, keys: ["part", "before", "after"])
            var hook = StorageHook()
            if let v = table["part"] { hook.part = try text(v, "\(itemKey).part", max: 1024) }
            for name in ["before", "after"] {
                guard let v = table[name] else { continue }
                guard let argv = v as? [Any], let first = argv.first as? String, first.hasPrefix("/") else {
                    throw error("\(itemKey).\(name)", "must be a command as a list, its program an absolute path: [/usr/bin/mount, -o, remount,rw, /srv]")
                }
                var words: [String] = [first]
                for (position, word) in argv.enumerated().dropFirst() {
                    words.append(try text(word, "\(itemKey).\(name)[\(position)]", max: 4096))
                }
                if name == "before" { hook.before = words } else { hook.after = words }
            }
            hooks.append(hook)
        }
        return hooks
    }

    func drive(_ value: Any, _ key: String, over base: DriveSettings) throws(ConfigurationError) -> DriveSettings {
        let table = try self.table(value, key, keys: ["media", "writable", "removable", "fua", "inquiry"])
        var drive = base
        if let v = table["media"] {
            drive.media = try choice(v, "\(key).media", DriveMedia.init(rawValue:))
        }
        if let v = table["writable"] { drive.writable = try bool(v, "\(key).writable") }
        if let v = table["removable"] { drive.removable = try bool(v, "\(key).removable") }
        if let v = table["fua"] { drive.fua = try bool(v, "\(key).fua") }
        if let v = table["inquiry"] {
            let inquiry = try self.table(v, "\(key).inquiry", keys: ["cd", "flash"])
            if let cd = inquiry["cd"] { drive.inquiry.cd = try self.inquiry(cd, "\(key).inquiry.cd", over: drive.inquiry.cd) }
            if let flash = inquiry["flash"] {
                drive.inquiry.flash = try self.inquiry(flash, "\(key).inquiry.flash", over: drive.inquiry.flash)
            }
        }
        return drive
    }
}

import Foundation

extension ConfigurationLoader {
    /// Reads `main` (absent: all defaults) and then `<its folder>/umsd.d/*.yaml` in name order.
    public static func load(main: String = "/etc/umsd/umsd.yaml") throws(ConfigurationError) -> DaemonConfiguration {
        var documents: [(file: String, text: String)] = []
        let manager = FileManager.default
        if manager.fileExists(atPath: main) {
            documents.append((main, try read(main)))
        }
        let folder = (main as NSString).deletingLastPathComponent + "/umsd.d"
        if let names = try? manager.contentsOfDirectory(atPath: folder) {
            for name in names.sorted() where name.hasSuffix(".yaml") && !name.hasPrefix(".") {
                documents.append(("\(folder)/\(name)", try read("\(folder)/\(name)")))
            }
        }
        return try parse(documents)
    }

    private static func read(_ path: String) throws(ConfigurationError) -> String {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: path, key: "", reason: "cannot be read as UTF-8 text")
        }
        return text
    }
}
