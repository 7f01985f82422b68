import Testing
@testable import MassStorage

@Suite struct KernelBufferTests {
    @Test func smallRequestsTakeTheirKmallocCache() {
        #expect(KernelBuffer.allocation(for: 13) == 16)
        #expect(KernelBuffer.allocation(for: 31) == 32)
        #expect(KernelBuffer.allocation(for: 65) == 96)
        #expect(KernelBuffer.allocation(for: 512) == 512)
        #expect(KernelBuffer.allocation(for: 525) == 1024)
        #expect(KernelBuffer.allocation(for: 4096) == 4096)
        #expect(KernelBuffer.allocation(for: 4096 + 13) == 8192)
    }

    @Test func largeRequestsTakeAPowerOfTwoBlockOfPages() {
        #expect(KernelBuffer.allocation(for: 8192 + 1) == 16384)
        #expect(KernelBuffer.allocation(for: 61440 + 13) == 65536)
        #expect(KernelBuffer.allocation(for: 65536) == 65536)
        #expect(KernelBuffer.allocation(for: 65536 + 13) == 131072)
        #expect(KernelBuffer.allocation(for: 1 << 20) == 1 << 20)
    }

    /// The CSW rides in the last data request only where it costs no larger buffer: CD sectors (2048 x 3, 2352 x 8)
    /// yes, whole pages and 64 KiB no.
    @Test func theCSWFitsBesideDataThatDoesNotFillItsBuffer() {
        func fits(_ length: Int) -> Bool { KernelBuffer.allocation(for: length + 13) == KernelBuffer.allocation(for: length) }
        #expect(fits(3 * 2048))
        #expect(fits(8 * 2352))
        #expect(fits(30 * 2048))
        #expect(!fits(4096))
        #expect(!fits(65536))
        #expect(!fits(512))
    }
}
