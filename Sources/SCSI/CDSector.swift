/// A raw 2352-byte CD-ROM Mode 1 sector rebuilt from the 2048 user bytes of an ISO image (ECMA-130 §14, Annex A).
///
/// READ CD (MMC) lets a host ask for the sync, header, EDC and ECC fields around the user data. An image
/// holds only the user data, so those fields are recomputed here exactly as a CD-ROM encoder would have written them.
public enum CDSector {
    /// Bytes in a raw sector: sync, header, user data, EDC, zero field, P and Q parity.
    public static let rawSize = 2352

    private static let userSize = 2048
    private static let headerOffset = 12
    private static let userOffset = 16
    private static let edcOffset = userOffset + userSize
    private static let zeroOffset = edcOffset + 4
    private static let pParityOffset = zeroOffset + 8
    private static let qParityOffset = pParityOffset + 2 * 86

    /// Writes the full raw Mode 1 sector for `lba` with `userData` (exactly 2048 bytes) into `output` (2352 bytes).
    public static func synthesizeMode1(
        lba: UInt32, userData: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) {
        precondition(userData.count == userSize, "Mode 1 user data is 2048 bytes")
        precondition(output.count == rawSize, "a raw sector is 2352 bytes")

        // §14.1: the sync pattern marks the start of every sector; the scrambler (Annex B) leaves it untouched.
        output[0] = 0x00
        for i in 1...10 { output[i] = 0xFF }
        output[11] = 0x00

        let (minute, second, frame) = bcdMSF(lba: lba)
        output[headerOffset] = minute
        output[headerOffset + 1] = second
        output[headerOffset + 2] = frame
        output[headerOffset + 3] = 0x01

        UnsafeMutableRawBufferPointer(rebasing: output[userOffset..<edcOffset]).copyMemory(from: userData)

        // §14.3: the EDC covers sync, header and user data, and is recorded least significant byte first.
        let check = edc(UnsafeRawBufferPointer(rebasing: output[0..<edcOffset]))
        for i in 0..<4 { output[edcOffset + i] = UInt8(truncatingIfNeeded: check >> (8 * i)) }
        for i in zeroOffset..<pParityOffset { output[i] = 0 }

        // Annex A codes bytes 12 onwards as they stand: Mode 1 keeps its header in the ECC, unlike Mode 2 Form 1,
        // which codes it as zeros. Q protects the P bytes too, so P must be in place first.
        writeParity(output, codewords: 43, dataSymbols: 24, step: 43, pitch: 1, parityOffset: pParityOffset)
        writeParity(output, codewords: 26, dataSymbols: 43, step: 44, pitch: 43, parityOffset: qParityOffset)
    }

    /// Convenience for tests and small callers: the raw Mode 1 sector for `lba` with `userData` (2048 bytes).
    public static func mode1(lba: UInt32, userData: [UInt8]) -> [UInt8] {
        var sector = [UInt8](repeating: 0, count: rawSize)
        userData.withUnsafeBytes { data in
            sector.withUnsafeMutableBytes { synthesizeMode1(lba: lba, userData: data, into: $0) }
        }
        return sector
    }

    /// The EDC over `bytes` (exposed for tests and for the header-only/EDC-only READ CD variants).
    ///
    /// ECMA-130 §14.3 defines it as the 32-bit CRC with P(x) = (x^16 + x^15 + x^2 + 1)(x^16 + x^2 + x + 1),
    /// shifted in least significant bit first, starting from zero, with no final inversion.
    public static func edc(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        edcTable.withUnsafeBufferPointer { table in
            var crc: UInt32 = 0
            for byte in bytes {
                crc = (crc >> 8) ^ table[Int((crc ^ UInt32(byte)) & 0xFF)]
            }
            return crc
        }
    }

    /// BCD minute/second/frame of an LBA (LBA + 150 frames).
    ///
    /// The header address (ECMA-130 §14.2) is the absolute time from the start of the program area, which begins
    /// with the 2-second pregap of track 1, so LBA 0 is 00:02:00, as in READ TOC's MSF form. Two BCD digits hold at
    /// most 99 minutes; later addresses, reachable only by DVD-sized images that no host reads as CD sectors, wrap
    /// modulo 100 minutes as a two-digit counter would.
    public static func bcdMSF(lba: UInt32) -> (UInt8, UInt8, UInt8) {
        let frames = UInt64(lba) + 150
        let minute = frames / (60 * 75) % 100
        return (bcd(minute), bcd(frames / 75 % 60), bcd(frames % 75))
    }

    private static func bcd(_ value: UInt64) -> UInt8 {
        UInt8((value / 10) << 4 | value % 10)
    }

    /// Fills the two parity symbols of every P or Q codeword (ECMA-130 Annex A).
    ///
    /// Annex A reads bytes 12...2351 as 1170 16-bit words and codes their most and least significant bytes
    /// separately, so each codeword is taken in two byte planes. Codeword `n`'s data symbol `m` is word
    /// `(step * m + pitch * n) mod (codewords * dataSymbols)`: for P (RSPC(26,24)) step 43 and pitch 1 walk a column
    /// of the 43-word-wide matrix; for Q (RSPC(45,43)) step 44 and pitch 43 walk a diagonal over data and P.
    /// The two parity words of codeword `n` are `n` and `n + codewords` words into the parity field.
    private static func writeParity(
        _ sector: UnsafeMutableRawBufferPointer, codewords: Int, dataSymbols: Int, step: Int, pitch: Int,
        parityOffset: Int
    ) {
        let words = codewords * dataSymbols
        let base = sector.baseAddress! + headerOffset
        gfTimesAlpha.withUnsafeBufferPointer { timesAlpha in
            gfOverOnePlusAlpha.withUnsafeBufferPointer { overOnePlusAlpha in
                for n in 0..<codewords {
                    for plane in 0..<2 {
                        var sum: UInt8 = 0
                        var weighted: UInt8 = 0
                        var word = pitch * n
                        for _ in 0..<dataSymbols {
                            let symbol = base.load(fromByteOffset: 2 * word + plane, as: UInt8.self)
                            sum ^= symbol
                            weighted = timesAlpha[Int(weighted ^ symbol)]
                            word += step
                            if word >= words { word -= words }
                        }
                        // The check matrix rows are all ones and descending powers of α ending α, 1 at the two
                        // parity symbols p0, p1; so sum + p0 + p1 = 0 and α·weighted + α·p0 + p1 = 0, whence
                        // p0 = (sum + α·weighted) / (1 + α) and p1 = sum + p0.
                        let p0 = overOnePlusAlpha[Int(sum ^ timesAlpha[Int(weighted)])]
                        sector[parityOffset + 2 * n + plane] = p0
                        sector[parityOffset + 2 * (n + codewords) + plane] = sum ^ p0
                    }
                }
            }
        }
    }

    /// x ↦ α·x in GF(2^8) with the primitive polynomial x^8 + x^4 + x^3 + x^2 + 1 (ECMA-130 Annex A), α = x.
    private static let gfTimesAlpha: [UInt8] = (0..<256).map { x in
        UInt8(truncatingIfNeeded: x << 1 ^ (x & 0x80 != 0 ? 0x11D : 0))
    }

    /// x ↦ x / (1 + α), the inverse of x ↦ x + α·x, which is a bijection because 1 + α is not zero.
    private static let gfOverOnePlusAlpha: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 256)
        for x in 0..<256 { table[Int(UInt8(x) ^ gfTimesAlpha[x])] = UInt8(x) }
        return table
    }()

    /// CRC steps for one byte; 0xD801_8001 is the EDC polynomial's low 32 coefficients bit-reversed, since the
    /// EDC shifts the least significant bit first.
    private static let edcTable: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc >> 1 ^ (crc & 1 != 0 ? 0xD801_8001 : 0) }
        return crc
    }
}
