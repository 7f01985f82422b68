// swift-tools-version:6.0
// A libFuzzer target over umsd's pure core, in its own package so the main package never builds with
// -sanitize=fuzzer. Build and run: Tests/Fuzz/run [seconds].
import PackageDescription

let package = Package(
    name: "umsd-fuzz",
    dependencies: [.package(name: "umsd", path: "../..")],
    targets: [
        .executableTarget(
            name: "FuzzCore",
            dependencies: [.product(name: "UMSDCore", package: "umsd")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    ],
    swiftLanguageModes: [.v6]
)
