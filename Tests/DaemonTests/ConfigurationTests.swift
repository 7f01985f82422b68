import Testing
@testable import Daemon
import MassStorage
import SCSI

@Suite struct ConfigurationTests {
    @Test func emptyConfigurationIsAllDefaults() throws {
        let configuration = try ConfigurationLoader.parse([("/etc/umsd/umsd.yaml", "")])
        #expect(configuration == DaemonConfiguration())
        #expect(configuration.drives.count == 1)
        #expect(configuration.drives[0].media == .auto)
        #expect(configuration.gadget.vendorID == 0x1D6B)
    }

    @Test func fullFile() throws {
        let text = """
            enabled: true
            gadget:
              mode: existing
              name: kvmd
              vendor_id: 0x1d6b
              product_id: "0104"
              serial: CAFEBABE0001
              udc: fe980000.usb
              max_power_ma: 200
              function: msd
              reenumerate_on_type_change: false
            drives:
              count: 3
              default:
                media: flash
                writable: true
                inquiry:
                  flash: {vendor: PiKVM, product: Flash Drive}
              list:
                - media: cd
                  writable: false
                  inquiry:
                    cd: {vendor: PiKVM, product: CD-ROM Drive, revision: "1.00"}
            storage:
              images: /var/lib/kvmd/msd
            control:
              socket: /run/kvmd/umsd.sock
              mode: "0660"
              group: kvmd
            state:
              persist: false
            log:
              level: debug
            cpu: 1
            """
        let c = try ConfigurationLoader.parse([("main.yaml", text)])
        #expect(c.gadget.mode == .existing)
        #expect(c.gadget.name == "kvmd")
        #expect(c.gadget.productID == 0x0104)
        #expect(c.gadget.serial == "CAFEBABE0001")
        #expect(c.gadget.udc == "fe980000.usb")
        #expect(c.gadget.maxPowerMilliamps == 200)
        #expect(c.gadget.function == "msd")
        #expect(!c.gadget.reenumerateOnTypeChange)
        #expect(c.drives.map(\.media) == [.cd, .flash, .flash])
        #expect(c.drives.map(\.writable) == [false, true, true])
        #expect(c.drives[0].inquiry.cd == Identity(vendor: "PiKVM", product: "CD-ROM Drive", revision: "1.00"))
        #expect(c.drives[1].inquiry.flash == Identity(vendor: "PiKVM", product: "Flash Drive", revision: "0100"))
        #expect(c.imageFolder == "/var/lib/kvmd/msd")
        #expect(c.controlSocketMode == 0o660)
        #expect(c.controlSocketGroup == "kvmd")
        #expect(!c.persistState)
        #expect(c.logLevel == "debug")
        #expect(c.cpu == .cpu(1))
        #expect(try ConfigurationLoader.parse([("a.yaml", "cpu: none")]).cpu == CPUPinning.none)
        #expect(try ConfigurationLoader.parse([("a.yaml", "")]).cpu == .startingCPU)
    }

    @Test func laterFilesWinKeyByKey() throws {
        let c = try ConfigurationLoader.parse([
            ("umsd.yaml", "gadget: {name: one, product: Main}\ndrives: {count: 2}"),
            ("umsd.d/10-a.yaml", "gadget: {name: two}"),
            ("umsd.d/20-b.yaml", "drives: {default: {media: flash, writable: true}}"),
        ])
        #expect(c.gadget.name == "two")
        #expect(c.gadget.product == "Main")
        #expect(c.drives.count == 2)
        #expect(c.drives.allSatisfy { $0.media == .flash && $0.writable })
    }

    @Test func rulesAcrossKeysApplyToTheMergedWhole() throws {
        // A writable default is fine once a later file makes the drives flash drives...
        let fine = try ConfigurationLoader.parse([
            ("a.yaml", "drives: {count: 2, default: {writable: true}}"),
            ("b.yaml", "drives: {default: {media: flash}, list: [{media: flash}, {media: flash}]}"),
        ])
        #expect(fine.drives.count == 2)
        // ...but not when nothing does.
        #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader.parse([("a.yaml", "drives: {default: {writable: true}}")])
        }
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        var yaml: String
        var key: String
        var reason: String
        var testDescription: String { key }
    }

    static let refusals: [Refusal] = [
        Refusal(yaml: "gadgets: {}", key: "gadgets", reason: "unknown key"),
        Refusal(yaml: "gadget: {nmae: x}", key: "gadget.nmae", reason: "unknown key"),
        Refusal(yaml: "gadget: {vendor_id: 0x12345}", key: "gadget.vendor_id", reason: "16-bit USB id"),
        Refusal(yaml: "gadget: {serial: 123}", key: "gadget.serial", reason: "must be a string"),
        Refusal(yaml: "gadget: {serial: \"12AB\"}", key: "gadget.serial", reason: "at least 12 hex digits"),
        Refusal(yaml: "gadget: {name: ../etc}", key: "gadget.name", reason: "letters, digits"),
        Refusal(yaml: "gadget: {mode: shared}", key: "gadget.mode", reason: "unknown value"),
        Refusal(yaml: "gadget: {max_power_ma: 1000}", key: "gadget.max_power_ma", reason: "0 to 900"),
        Refusal(yaml: "drives: {count: 0}", key: "drives.count", reason: "1 to 16"),
        Refusal(yaml: "drives: {count: 1, list: [{}, {}]}", key: "drives.list", reason: "has 2 drives"),
        Refusal(yaml: "drives: {list: [{media: bluray}]}", key: "drives.list[0].media", reason: "unknown value"),
        Refusal(yaml: "drives: {list: [{media: cd, writable: true}]}", key: "drives.list[0]", reason: "cannot be writable"),
        Refusal(yaml: "drives: {default: {inquiry: {cd: {vendor: TOOLONGVENDOR}}}}", key: "drives.default.inquiry.cd.vendor", reason: "at most 8"),
        Refusal(yaml: "drives: {default: {fua: maybe}}", key: "drives.default.fua", reason: "true or false"),
        Refusal(yaml: "storage: {images: relative/path}", key: "storage.images", reason: "absolute path"),
        Refusal(yaml: "control: {mode: \"999\"}", key: "control.mode", reason: "permissions"),
        Refusal(yaml: "control: {mode: 999}", key: "control.mode", reason: "octal"),
        Refusal(yaml: "control: {mode: 680}", key: "control.mode", reason: "octal"),
        Refusal(yaml: "control: {mode: 1000}", key: "control.mode", reason: "octal"),
        Refusal(yaml: "control: {mode: \"0x1b6\"}", key: "control.mode", reason: "octal"),
        Refusal(yaml: "control: {mode: \"rw-rw----\"}", key: "control.mode", reason: "octal"),
        Refusal(yaml: "control: {mode: \"\"}", key: "control.mode", reason: "octal"),
        Refusal(yaml: "control: {mode: -660}", key: "control.mode", reason: "octal"),
        Refusal(yaml: "control: {mode: true}", key: "control.mode", reason: "octal"),
        Refusal(yaml: "control: {mode: 6.6}", key: "control.mode", reason: "octal"),
        Refusal(yaml: "log: {level: loud}", key: "log.level", reason: "must be one of"),
        Refusal(yaml: "enabled: yes please", key: "enabled", reason: "true or false"),
        Refusal(yaml: "cpu: -1", key: "cpu", reason: "auto, none or a CPU number"),
        Refusal(yaml: "cpu: fast", key: "cpu", reason: "auto, none or a CPU number"),
        Refusal(yaml: "cpu: true", key: "cpu", reason: "auto, none or a CPU number"),
        Refusal(yaml: "- a\n- b", key: "", reason: "top level must be a mapping"),
        Refusal(yaml: "gadget: [1, 2", key: "", reason: "not valid YAML"),
    ]

    @Test(arguments: refusals) func refusesWithFileKeyAndReason(_ refusal: Refusal) {
        do {
            _ = try ConfigurationLoader.parse([("/etc/umsd/umsd.d/50-bad.yaml", refusal.yaml)])
            Issue.record("accepted: \(refusal.yaml)")
        } catch {
            #expect(error.file.hasSuffix("50-bad.yaml") || error.file.contains("50-bad.yaml"))
            #expect(error.key == refusal.key)
            #expect(error.reason.contains(refusal.reason), "\(error.description)")
        }
    }

    /// Permissions are octal however they are written: YAML 1.1 reads 0660 as the number 432 and 1.2 as 660, and a
    /// plain 440 must not become the decimal 440 (0o670, which lets the group in).
    @Test func controlModeIsOctal() throws {
        let cases: [(String, UInt16)] = [
            ("0660", 0o660), ("660", 0o660), ("440", 0o440), ("400", 0o400), ("0o640", 0o640), ("0600", 0o600),
            ("\"0660\"", 0o660), ("\"660\"", 0o660), ("\"0o660\"", 0o660), ("0", 0), ("777", 0o777), ("0777", 0o777),
        ]
        for (text, mode) in cases {
            let parsed = try ConfigurationLoader.parse([("a.yaml", "control: {mode: \(text)}")])
            #expect(parsed.controlSocketMode == mode, "mode: \(text) gave \(String(parsed.controlSocketMode, radix: 8))")
        }
        // Other numbers with a leading zero are not octal by accident: 0104 stays the USB id 0x0104.
        #expect(try ConfigurationLoader.parse([("a.yaml", "gadget: {product_id: 0104}")]).gadget.productID == 0x0104)
        #expect(try ConfigurationLoader.parse([("a.yaml", "gadget: {max_power_ma: 100}")]).gadget.maxPowerMilliamps == 100)
    }

    /// Paths are compared by what they name, so the configuration keeps one spelling of each: no trailing slash, no
    /// `//`, `.` or `..`.
    @Test func pathsAreNormalised() throws {
        let text = """
            storage: {images: /srv//images/./iso/../}
            control: {socket: /run/umsd/../umsd//control.sock}
            state: {file: /var/lib/umsd/./state.json}
            http:
              token_file: /var/lib//umsd/token/
              basic_auth: {user: admin, password_file: /etc/umsd/../umsd/password}
              tls: {certificate: /etc/ssl//cert.pem, key: /etc/ssl/./key.pem}
            """
        let c = try ConfigurationLoader.parse([("a.yaml", text)])
        #expect(c.imageFolder == "/srv/images")
        #expect(c.controlSocket == "/run/umsd/control.sock")
        #expect(c.stateFile == "/var/lib/umsd/state.json")
        #expect(c.http.tokenFile == "/var/lib/umsd/token")
        #expect(c.http.basicAuthPasswordFile == "/etc/umsd/password")
        #expect(c.http.tlsCertificate == "/etc/ssl/cert.pem")
        #expect(c.http.tlsKey == "/etc/ssl/key.pem")
        for (path, normal) in [("/", "/"), ("//", "/"), ("/..", "/"), ("/a/../..", "/"), ("/a/b/", "/a/b"), ("/a/...", "/a/...")] {
            #expect(try ConfigurationLoader.parse([("a.yaml", "storage: {images: \"\(path)\"}")]).imageFolder == normal, "\(path)")
        }
    }

    @Test func aBadKeyIsBlamedOnItsOwnFile() {
        do {
            _ = try ConfigurationLoader.parse([("umsd.yaml", "gadget: {name: a}"), ("umsd.d/20.yaml", "gadget: {colour: red}")])
            Issue.record("accepted")
        } catch {
            #expect(error.file == "umsd.d/20.yaml")
            #expect(error.description == "umsd.d/20.yaml: gadget.colour: unknown key (known here: function, manufacturer, max_power_ma, mode, name, product, product_id, reenumerate_on_type_change, serial, udc, vendor_id)")
        }
    }
}

import Foundation

@Suite struct ConfigurationFileTests {
    @Test func readsTheMainFileAndItsDropInsInNameOrder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("umsd-config-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("umsd.d"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "gadget: {name: main}\n".write(to: folder.appendingPathComponent("umsd.yaml"), atomically: true, encoding: .utf8)
        try "gadget: {name: second}\n".write(to: folder.appendingPathComponent("umsd.d/20-second.yaml"), atomically: true, encoding: .utf8)
        try "gadget: {name: first, product: P}\n".write(to: folder.appendingPathComponent("umsd.d/10-first.yaml"), atomically: true, encoding: .utf8)
        try "gadget: {name: ignored}\n".write(to: folder.appendingPathComponent("umsd.d/notes.txt"), atomically: true, encoding: .utf8)
        let configuration = try ConfigurationLoader.load(main: folder.appendingPathComponent("umsd.yaml").path)
        #expect(configuration.gadget.name == "second")
        #expect(configuration.gadget.product == "P")
    }

    @Test func aMissingMainFileMeansDefaults() throws {
        #expect(try ConfigurationLoader.load(main: "/nonexistent/umsd.yaml") == DaemonConfiguration())
    }
}
