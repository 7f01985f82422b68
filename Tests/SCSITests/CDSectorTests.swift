import Testing
import SCSI

/// Raw Mode 1 sectors checked against an independent encoder and against the code's own definition.
///
/// The golden values come from Neill Corlett's unecm, as compiled into the PyPI package pyecm-tools 1.0.2. An ECM
/// stream's type-1 record holds only a sector's three address bytes and its 2048 user bytes, and unecm rebuilds the
/// sync, mode byte, EDC, zero field and P/Q parity from them. A throwaway script, not kept in the repository, wrote
/// one such record per case below (address = BCD MSF of LBA + 150), decoded the stream with `pyecm.decode`, checked
/// unecm's EDC against a bit-by-bit CRC of its own, and printed the digests recorded here.
@Suite struct CDSectorTests {
    struct Golden: Sendable, CustomTestStringConvertible {
        let name: String
        let lba: UInt32
        let userData: [UInt8]
        let header: [UInt8]
        let edc: UInt32
        let fnv1a64: UInt64
        let byteSum: Int

        var testDescription: String { name }
    }

    static let goldens = [
        Golden(
            name: "zeros at LBA 0", lba: 0, userData: [UInt8](repeating: 0, count: 2048),
            header: [0x00, 0x02, 0x00, 0x01], edc: 0x2B68_13C5, fnv1a64: 0xC9AB_16D7_17B7_A353, byteSum: 7030),
        Golden(
            name: "counting at LBA 16", lba: 16, userData: (0..<2048).map { UInt8(truncatingIfNeeded: $0) },
            header: [0x00, 0x02, 0x16, 0x01], edc: 0x9251_935E, fnv1a64: 0xA95D_F56A_303B_CFD3, byteSum: 299_210),
        Golden(
            name: "random at LBA 300000", lba: 300_000, userData: lcgBytes(seed: 0xC0FFEE, count: 2048),
            header: [0x66, 0x42, 0x00, 0x01], edc: 0xA146_EFE6, fnv1a64: 0x06F8_DE04_F7D2_5BEB, byteSum: 301_858),
    ]

    /// Bytes 2076...2351 (P then Q) of the "random at LBA 300000" sector, as unecm wrote them.
    static let randomParity = bytes(
        hex: "02f1e4ed188f32e525695cea1dee0cfa383348bff44232adfaf25106d29296c5039d5a6d5b2999c3888290b5e782bc8d"
            + "b78ec7e261e44020222f93736f9dc19dffaf1b42ebbc8caf5fd385a2e810c656be7cba52721b4f46d4880e2d78d27c7b"
            + "a22573eabdaff3764107c310e9e5f5e5a3b43988f95db79cbffdf0fefd6f78384fcbd872ecd2dcd4d57f1eae5cd5b8d6"
            + "0aa36f2a972bdac29e182c64a1797d60e01e3000417d2b110bb57109804f687c4375ecb698b8f5bb63637e7cde41e342"
            + "40fc4810d2d883c1105154aa16f65663e12a701a5b067d4cde3bd553c5a12ec7c41f0ee1610a2c0d1f19e46f632532a1"
            + "653d446e78025a4a42989353c4d0d218a72152a02ddfd338f75bd8a7a44cdfdd3dbe8ba6")

    @Test(arguments: goldens)
    func matchesUnecm(_ golden: Golden) {
        let sector = CDSector.mode1(lba: golden.lba, userData: golden.userData)
        #expect(sector.count == CDSector.rawSize)
        #expect(Array(sector[12..<16]) == golden.header)
        #expect(Array(sector[16..<2064]) == golden.userData)
        #expect(Self.littleEndian32(sector, at: 2064) == golden.edc)
        #expect(Self.fnv1a64(sector) == golden.fnv1a64)
        #expect(sector.reduce(0) { $0 + Int($1) } == golden.byteSum)
    }

    @Test func randomSectorParityMatchesUnecmByteForByte() {
        let golden = Self.goldens[2]
        let sector = CDSector.mode1(lba: golden.lba, userData: golden.userData)
        #expect(Self.randomParity.count == 276)
        #expect(Array(sector[2076..<2352]) == Self.randomParity)
    }

    @Test func syncHeaderAndZeroFieldAreExact() {
        let sector = CDSector.mode1(lba: 16, userData: Self.goldens[2].userData)
        let sync: [UInt8] = [0x00] + [UInt8](repeating: 0xFF, count: 10) + [0x00]
        #expect(Array(sector[0..<12]) == sync)
        #expect(Array(sector[12..<16]) == [0x00, 0x02, 0x16, 0x01])
        #expect(Array(sector[2068..<2076]) == [UInt8](repeating: 0, count: 8))
    }

    static let msfCases: [(lba: UInt32, expected: [UInt8])] = [
        (0, [0x00, 0x02, 0x00]),
        (16, [0x00, 0x02, 0x16]),
        (74, [0x00, 0x02, 0x74]),
        (75, [0x00, 0x03, 0x00]),
        (4349, [0x00, 0x59, 0x74]),  // last frame of minute 0
        (4350, [0x01, 0x00, 0x00]),  // first frame of minute 1
        (300_000, [0x66, 0x42, 0x00]),
        (449_849, [0x99, 0x59, 0x74]),  // the last address two BCD minute digits can hold
        (449_850, [0x00, 0x00, 0x00]),  // ...after which the minute wraps, as documented
        (UInt32.max, [0x37, 0x12, 0x45]),  // LBA + 150 must not overflow 32 bits
    ]

    @Test(arguments: msfCases)
    func bcdMSF(lba: UInt32, expected: [UInt8]) {
        let (minute, second, frame) = CDSector.bcdMSF(lba: lba)
        #expect([minute, second, frame] == expected)
    }

    /// The catalogued check value of CRC-32/CD-ROM-EDC (Greg Cook's CRC RevEng catalogue), independent of unecm.
    @Test func edcHasTheCataloguedCheckValue() {
        let check = Array("123456789".utf8).withUnsafeBytes { CDSector.edc($0) }
        #expect(check == 0x6EC2_EDC4)
    }

    @Test(arguments: goldens)
    func storedEdcCoversSyncHeaderAndDataAndLeavesZeroResidue(_ golden: Golden) {
        let sector = CDSector.mode1(lba: golden.lba, userData: golden.userData)
        #expect(sector[0..<2064].withUnsafeBytes { CDSector.edc($0) } == Self.littleEndian32(sector, at: 2064))
        // A reflected CRC with no final inversion leaves a zero remainder over the data followed by its own CRC.
        #expect(sector[0..<2068].withUnsafeBytes { CDSector.edc($0) } == 0)
    }

    @Test(arguments: [0, 7, 1000 * 8 + 3, 2047 * 8 + 7])
    func flippingOneDataBitChangesEdcAndParity(bit: Int) {
        var data = Self.goldens[1].userData
        let before = CDSector.mode1(lba: 16, userData: data)
        data[bit / 8] ^= 1 << UInt8(bit % 8)
        let after = CDSector.mode1(lba: 16, userData: data)
        #expect(Self.littleEndian32(before, at: 2064) != Self.littleEndian32(after, at: 2064))
        #expect(Array(before[2076..<2352]) != Array(after[2076..<2352]))
        #expect(Array(before[0..<16]) == Array(after[0..<16]))
    }

    @Test(arguments: goldens.map(\.lba) + [1, 4350, 449_849])
    func everyPAndQCodewordHasZeroSyndromes(lba: UInt32) {
        let sector = CDSector.mode1(lba: lba, userData: Self.lcgBytes(seed: lba, count: 2048))
        let codewords = Self.pCodewords(sector) + Self.qCodewords(sector)
        #expect(codewords.count == 86 + 52)
        #expect(codewords.filter { Self.syndromes($0) != [0, 0] }.count == 0)
    }

    @Test func oneCorruptByteFailsExactlyOnePAndOneQCodeword() {
        var sector = CDSector.mode1(lba: 300_000, userData: Self.goldens[2].userData)
        sector[1000] ^= 0x5A
        #expect(Self.pCodewords(sector).filter { Self.syndromes($0) != [0, 0] }.count == 1)
        #expect(Self.qCodewords(sector).filter { Self.syndromes($0) != [0, 0] }.count == 1)
    }

    @Test func synthesizeOverwritesEveryByteOfTheOutput() {
        let golden = Self.goldens[1]
        let expected = CDSector.mode1(lba: golden.lba, userData: golden.userData)
        for fill: UInt8 in [0x00, 0xAA, 0xFF] {
            var output = [UInt8](repeating: fill, count: CDSector.rawSize)
            golden.userData.withUnsafeBytes { data in
                output.withUnsafeMutableBytes { CDSector.synthesizeMode1(lba: golden.lba, userData: data, into: $0) }
            }
            #expect(output == expected)
        }
    }

    // MARK: - A decoder's view of ECMA-130 Annex A, written from the standard rather than from the encoder

    /// Annex A numbers the 1170 16-bit words after the sync S(0)...S(1169) and codes each byte plane on its own.
    static func symbol(_ sector: [UInt8], word: Int, plane: Int) -> UInt8 {
        sector[12 + 2 * word + plane]
    }

    /// P vector N_P (0...42) is S(43·M_P + N_P) for M_P = 0...25, rows 24 and 25 being the parity.
    static func pCodewords(_ sector: [UInt8]) -> [[UInt8]] {
        (0..<43).flatMap { n in
            (0..<2).map { plane in (0..<26).map { m in symbol(sector, word: 43 * m + n, plane: plane) } }
        }
    }

    /// Q vector N_Q (0...25) is S((44·M_Q + 43·N_Q) mod 1118) for M_Q = 0...42, then S(1118 + N_Q), S(1144 + N_Q).
    static func qCodewords(_ sector: [UInt8]) -> [[UInt8]] {
        (0..<26).flatMap { n in
            (0..<2).map { plane in
                let words = (0..<43).map { m in (44 * m + 43 * n) % 1118 } + [1118 + n, 1144 + n]
                return words.map { symbol(sector, word: $0, plane: plane) }
            }
        }
    }

    /// H·V for the check matrix [1 1 ... 1; α^(k-1) ... α 1] of an RSPC(k, k-2) codeword V.
    static func syndromes(_ codeword: [UInt8]) -> [UInt8] {
        var plain: UInt8 = 0
        var weighted: UInt8 = 0
        for symbol in codeword {
            plain ^= symbol
            weighted = gfMultiply(weighted, 2) ^ symbol
        }
        return [plain, weighted]
    }

    /// Shift-and-add multiplication modulo x^8 + x^4 + x^3 + x^2 + 1, deliberately table-free.
    static func gfMultiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        var product: UInt8 = 0
        var a = a
        var b = b
        while b != 0 {
            if b & 1 != 0 { product ^= a }
            a = a & 0x80 != 0 ? (a << 1) ^ 0x1D : a << 1
            b >>= 1
        }
        return product
    }

    // MARK: - Fixtures

    /// The generator the oracle script used too: x ← 1103515245·x + 12345 mod 2^32, emitting the top byte.
    static func lcgBytes(seed: UInt32, count: Int) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 1_103_515_245 &+ 12345
            return UInt8(state >> 24)
        }
    }

    static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        bytes.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
    }

    static func littleEndian32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    static func bytes(hex: String) -> [UInt8] {
        let digits = Array(hex.utf8).map { UInt8(Character(UnicodeScalar($0)).hexDigitValue!) }
        return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
    }
}
