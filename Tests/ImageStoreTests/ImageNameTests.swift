import Testing

@testable import ImageStore

@Suite struct ImageNameTests {
    static let good: [String] = [
        "debian.iso",
        "isos/debian.iso",
        "a b.img",
        "Übung ünd Ärger.img",
        "x..y.img",
        "a.b.c",
        "-dash_underscore~+=,;'()[]{}!@#$%^&",
        "1/2/3/4/5/6/7/8",
        String(repeating: "x", count: 255),
        [String](repeating: String(repeating: "y", count: 255), count: 4).joined(separator: "/"),
        "CONSOLE.img", "console", "COM10", "a/NULL.bin", "LPT0",
    ]

    static let bad: [String] = [
        "",
        "/abs",
        "/",
        "../x",
        "a/../b",
        "a/..",
        "..",
        ".",
        "./a",
        "a/./b",
        ".hidden",
        "a/.hidden",
        ".dir/a.img",
        "a\\b",
        "a\u{01}b",
        "a\u{1F}",
        "a\u{7F}",
        "tab\there",
        "new\nline",
        "a//b",
        "a/",
        String(repeating: "x", count: 256),
        "1/2/3/4/5/6/7/8/9",
        [String](repeating: String(repeating: "y", count: 255), count: 4).joined(separator: "/") + "/z",
        "trailing.",
        "trailing ",
        "   ",
        "a/ /b",
        "CON",
        "con.img",
        "folder/Nul.iso",
        "COM1",
        "lpt9.txt",
        "AUX",
        "PRN.tar.gz",
    ]

    @Test(arguments: good) func goodNamesAreAccepted(_ text: String) throws {
        let name = try ImageName(text)
        #expect(name.text == text)
        #expect(name.description == text)
        #expect(name.segments.joined(separator: "/") == text)
    }

    @Test(arguments: bad) func badNamesAreRefusedWithBadName(_ text: String) {
        let error = storeError { _ = try ImageName(text) }
        #expect(error?.code == "bad-name")
        #expect(error?.message.isEmpty == false)
        // A message never carries the control characters it complains about.
        #expect(error?.message.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F } == true)
    }

    @Test func limitsAreExact() throws {
        // 1024 bytes in all is allowed, 1025 is not.
        let segment = String(repeating: "s", count: 255)
        let exactly = [segment, segment, segment, String(repeating: "t", count: 254), "u"].joined(separator: "/")
        #expect(exactly.utf8.count == 1024)
        #expect(throws: Never.self) { try ImageName(exactly) }
        #expect(storeError { _ = try ImageName(exactly + "v") }?.code == "bad-name")
        // A 255-byte segment counts UTF-8 bytes, not characters.
        let umlauts = String(repeating: "ü", count: 127) + "x"
        #expect(umlauts.utf8.count == 255)
        #expect(throws: Never.self) { try ImageName(umlauts) }
        #expect(storeError { _ = try ImageName(umlauts + "x") }?.code == "bad-name")
    }

    @Test func partsOfAName() throws {
        let name = try ImageName("isos/linux/debian.ISO")
        #expect(name.fileName == "debian.ISO")
        #expect(name.folders == ["isos", "linux"])
        #expect(name.isISO)
        #expect(try !ImageName("isos.img").isISO)
    }

    @Test func temporaryNamesFitNameMax() {
        let long = String(repeating: "ä", count: 127)
        let temporary = Upload.temporaryName(id: String(repeating: "i", count: 64), fileName: long)
        #expect(temporary.utf8.count <= 255)
        #expect(temporary.hasPrefix(".umsd-upload-" + String(repeating: "i", count: 64) + "-ää"))
        #expect(Upload.temporaryName(id: "u-1", fileName: "a.img") == ".umsd-upload-u-1-a.img")
    }

    @Test func transferIDs() {
        #expect(Upload.isValidID("u-7f3a"))
        #expect(Upload.isValidID("A_b-9"))
        #expect(Upload.isValidID(String(repeating: "x", count: 64)))
        #expect(!Upload.isValidID(""))
        #expect(!Upload.isValidID(String(repeating: "x", count: 65)))
        #expect(!Upload.isValidID("a b"))
        #expect(!Upload.isValidID("a/b"))
        #expect(!Upload.isValidID("ä"))
    }
}
