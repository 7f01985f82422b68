/// The buffer f_fs allocates for each request: `kmalloc(length)`, since the virtual board's controller (and dwc2,
/// musb) do not take scatter-gather lists. Kernels built with init_on_alloc (Debian's) zero all of it, so a
/// request a few bytes over a size costs the whole next size.
enum KernelBuffer {
    /// SLUB's kmalloc caches up to KMALLOC_MAX_CACHE_SIZE (two pages).
    private static let classes = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192]
    private static let pageSize = 4096

    /// Bytes taken for a request of `bytes`: the smallest kmalloc cache that holds it, and above two pages a
    /// power-of-two block of pages (kmalloc_large).
    static func allocation(for bytes: Int) -> Int {
        if let size = classes.first(where: { $0 >= bytes }) { return size }
        var block = pageSize
        while block < bytes { block <<= 1 }
        return block
    }
}
