import ArgumentParser
import Foundation
import Glibc
import HTTPAPI

/// Where the daemon's HTTP API is and how to get in.
struct APIOptions: ParsableArguments {
    @Option(help: "The daemon's HTTP API.")
    var url = "http://127.0.0.1:8780"

    @Option(help: "The bearer token (default: the one in --token-file, when readable).")
    var token: String?

    @Option(help: "A file holding the bearer token.")
    var tokenFile = "/var/lib/umsd/http-token"

    func client() throws -> APIClient {
        let fileToken = (try? String(contentsOfFile: tokenFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            return try APIClient(url: url, token: token ?? (fileToken?.isEmpty == false ? fileToken : nil))
        } catch {
            printError("umsd: \(error.message)")
            throw ExitCode.failure
        }
    }
}

/// Runs a client call; a failure or a refusal is one sentence and exit 1.
func call(_ work: () throws(APIClient.Failure) -> APIClient.Answer, expect: Set<Int>) throws -> APIClient.Answer {
    let answer: APIClient.Answer
    do {
        answer = try work()
    } catch {
        printError("umsd: \(error.message)")
        throw ExitCode.failure
    }
    guard expect.contains(answer.status) else {
        printError("umsd: \(APIClient.message(answer))")
        throw ExitCode.failure
    }
    return answer
}

struct Image: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the images of a running umsd serve through its HTTP API.",
        subcommands: [List.self, Upload.self, Download.self, Remove.self, Create.self, Abort.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the images, with their drives.")
        @Flag(help: "Print the API's JSON.") var json = false
        @OptionGroup var api: APIOptions

        func run() throws {
            let client = try api.client()
            let answer = try call({ () throws(APIClient.Failure) in try client.send("GET", "/api/images") }, expect: [200])
            if json { return writeLine(String(decoding: answer.body, as: UTF8.self)) }
            struct Listing: Decodable {
                struct Entry: Decodable {
                    var name: String
                    var size: Int64
                    var complete: Bool
                    var inUse: [Int]
                }
                var images: [Entry]
            }
            let listing = try JSONDecoder().decode(Listing.self, from: Data(answer.body))
            for image in listing.images {
                var line = "\(image.name)  \(humanSize(image.size))"
                if !image.complete { line += "  (uploading)" }
                if !image.inUse.isEmpty { line += "  in drive \(image.inUse.map(String.init).joined(separator: ", "))" }
                writeLine(line)
            }
        }
    }

    struct Upload: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Upload an image file.")
        @Argument(help: "The image file.") var file: String
        @Option(help: "Its name in the store (default: the file's name); folders with '/'.") var name: String?
        @Flag(help: "Replace an image of that name (not while a drive holds it).") var replace = false
        @OptionGroup var api: APIOptions

        func run() throws {
            let client = try api.client()
            let target = name ?? (file as NSString).lastPathComponent
            let bar = ProgressBar(label: target)
            let answer = try call(
                { () throws(APIClient.Failure) in
                    try client.upload(file: file, as: target, replace: replace) { bar.update($0, $1) }
                }, expect: [201])
            bar.finish()
            struct Entry: Decodable { var name: String; var size: Int64 }
            let image = try? JSONDecoder().decode(Entry.self, from: Data(answer.body))
            writeLine("Uploaded \(image?.name ?? target) (\(humanSize(image?.size ?? 0))).")
        }
    }

    struct Download: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download an image.")
        @Argument(help: "The image's name in the store.") var name: String
        @Option(name: [.customShort("o"), .customLong("output")], help: "The file to write (default: the image's file name here).")
        var output: String?
        @OptionGroup var api: APIOptions

        func run() throws {
            let client = try api.client()
            let destination = output ?? (name as NSString).lastPathComponent
            let bar = ProgressBar(label: name)
            _ = try call(
                { () throws(APIClient.Failure) in try client.download(name, to: destination) { bar.update($0, $1) } },
                expect: [200])
            bar.finish()
            writeLine("Downloaded \(name) to \(destination).")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an image (not while a drive holds it).")
        @Argument(help: "The image's name in the store.") var name: String
        @OptionGroup var api: APIOptions

        func run() throws {
            let client = try api.client()
            let path = "/api/images/" + encodePath(name)
            _ = try call({ () throws(APIClient.Failure) in try client.send("DELETE", path) }, expect: [204])
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an empty flash image, optionally formatted.")
        @Argument(help: "The new image's name.") var name: String
        @Option(help: "Its size: bytes, or with K, M, G or T (e.g. 4G).") var size: String
        @Option(name: .customLong("fs"), help: "none, vfat or exfat.") var filesystem = "none"
        @Flag(help: "No partition table: the filesystem starts at byte 0.") var noPartition = false
        @Option(help: "The filesystem's label.") var label: String?
        @Flag(help: "Replace an image of that name (not while a drive holds it).") var replace = false
        @OptionGroup var api: APIOptions

        func validate() throws {
            guard ["none", "vfat", "exfat"].contains(filesystem) else {
                throw ValidationError("--fs takes none, vfat or exfat, not \"\(filesystem)\".")
            }
        }

        func run() throws {
            let client = try api.client()
            struct Body: Encodable {
                var name: String
                var size: String
                var filesystem: String
                var partitioned: Bool
                var label: String?
                var replace: Bool
            }
            let body = Array(try JSONEncoder().encode(Body(
                name: name, size: size, filesystem: filesystem, partitioned: !noPartition, label: label, replace: replace)))
            _ = try call({ () throws(APIClient.Failure) in try client.send("POST", "/api/images/create", json: body) }, expect: [201])
            writeLine("Created \(name).")
        }
    }

    struct Abort: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Abort an upload in progress (see GET /api/transfers).")
        @Argument(help: "The transfer id.") var id: String
        @OptionGroup var api: APIOptions

        func run() throws {
            let client = try api.client()
            let path = "/api/transfers/" + encodePath(id)
            _ = try call({ () throws(APIClient.Failure) in try client.send("DELETE", path) }, expect: [204])
        }
    }
}

func encodePath(_ name: String) -> String {
    let allowed = CharacterSet.alphanumerics.union(.init(charactersIn: "-._~"))
    return name.split(separator: "/", omittingEmptySubsequences: false)
        .map { String($0).addingPercentEncoding(withAllowedCharacters: allowed) ?? String($0) }.joined(separator: "/")
}

func humanSize(_ bytes: Int64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) bytes" : String(format: "%.1f %@", value, units[unit])
}

/// A progress line on a terminal (standard error), redrawn at most 10 times a second; nothing when not a terminal.
final class ProgressBar {
    private let label: String
    private let enabled = isatty(2) == 1
    private var last = Date.distantPast
    private let start = Date()

    init(label: String) {
        self.label = label
    }

    func update(_ done: Int64, _ total: Int64?) {
        guard enabled, Date().timeIntervalSince(last) >= 0.1 || done == total else { return }
        last = Date()
        let elapsed = max(Date().timeIntervalSince(start), 0.001)
        let rate = "\(humanSize(Int64(Double(done) / elapsed)))/s"
        var line = "\(label)  \(humanSize(done))"
        if let total, total > 0 {
            let fraction = Double(done) / Double(total)
            let width = 30
            let filled = Int(fraction * Double(width))
            line = "\(label)  [\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] "
                + "\(Int(fraction * 100))%  \(humanSize(done)) of \(humanSize(total))"
        }
        let text = Array("\r\(line)  \(rate)\u{1B}[K".utf8)
        _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    func finish() {
        guard enabled else { return }
        _ = write(2, "\n", 1)
    }
}
