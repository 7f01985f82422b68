// swift-tools-version:6.1
// Micro-benchmarks of umsd's pure protocol core (no syscalls): what one Bulk-Only command costs in CPU and
// allocations before any I/O happens. A package of its own so the main package never depends on the benchmark
// framework. Run: Bench/Micro/run (or `swift package benchmark` in this folder).
import PackageDescription

let package = Package(
    name: "UMSDMicro",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "umsd", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                .product(name: "UMSDCore", package: "umsd"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/CoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
