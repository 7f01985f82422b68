import CFunctionFSShim
import Glibc

/// The calling thread's CPU, and pinning it to one.
public enum ThreadAffinity {
    /// The CPU the calling thread runs on now; nil if the kernel cannot say.
    /// The corresponding C call is `sched_getcpu`.
    public static var currentCPU: Int? {
        let cpu = umsd_current_cpu()
        return cpu >= 0 ? Int(cpu) : nil
    }

    /// CPUs online now.
    public static var onlineCPUs: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// Keeps the calling thread, and the threads it creates from then on, on `cpu`.
    /// The corresponding C call is `sched_setaffinity` with a one-CPU set.
    public static func pinCallingThread(to cpu: Int) throws(SystemError) {
        guard cpu >= 0, cpu <= Int(Int32.max) else { throw SystemError("sched_setaffinity", errno: EINVAL) }
        try check("sched_setaffinity") { umsd_pin_thread(Int32(cpu)) }
    }
}
