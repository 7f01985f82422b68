import Foundation
import FunctionFS
import MassStorage
import Synchronization
import Testing

@Suite struct CPUPinningTests {
    @Test func parsesWhatTheOptionAndTheConfigurationAccept() {
        #expect(CPUPinning("auto") == .startingCPU)
        #expect(CPUPinning("none") == CPUPinning.none)
        #expect(CPUPinning("0") == .cpu(0))
        #expect(CPUPinning("3") == .cpu(3))
        for bad in ["", "-1", "1024", "two", "0x1", "auto "] { #expect(CPUPinning(bad) == nil, "\(bad)") }
        for text in ["auto", "none", "7"] { #expect(CPUPinning(text)?.description == text) }
    }

    /// The real system calls, on a thread of the test's own: pinned, it runs on that CPU and nowhere else.
    @Test func pinsTheCallingThread() throws {
        let last = ThreadAffinity.onlineCPUs - 1
        try #require(last >= 0)
        let seen = Mutex<[Int?]>([])
        let failed = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            do { try ThreadAffinity.pinCallingThread(to: last) } catch { failed.withLock { $0 = "\(error)" } }
            for _ in 0..<20 {
                seen.withLock { $0.append(ThreadAffinity.currentCPU) }
                usleep(1000)
            }
            done.signal()
        }.start()
        done.wait()
        #expect(failed.withLock { $0 } == nil)
        #expect(seen.withLock { $0 } == Array(repeating: last, count: 20))
        #expect(throws: SystemError.self) { try ThreadAffinity.pinCallingThread(to: 100_000) }
    }
}
