// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "umsd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "umsd", targets: ["umsd"]),
        // The pure protocol core, for the fuzz and benchmark packages that sit beside this one.
        .library(name: "UMSDCore", targets: ["USBDescriptors", "BulkOnly", "SCSI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
    ],
    targets: [
        // Pure protocol core: no syscalls, exhaustively unit-tested.
        .target(name: "USBDescriptors"),
        .target(name: "BulkOnly"),
        .target(name: "SCSI"),

        // C modules: system libraries and a tiny shim for what Swift cannot import.
        .systemLibrary(name: "CLibAIO", path: "Sources/CLibAIO"),
        .systemLibrary(name: "CUSBGX", path: "Sources/CUSBGX", pkgConfig: "libusbgx",
                       providers: [.apt(["libusbgx-dev", "libconfig-dev"])]),
        .target(name: "CFunctionFSShim"),

        // Thin I/O layer: owns the syscalls.
        .target(name: "FunctionFS", dependencies: ["CLibAIO", "CFunctionFSShim", "USBDescriptors"]),
        .target(name: "Backing", dependencies: ["CFunctionFSShim"]),
        .target(name: "Gadget", dependencies: ["CUSBGX"]),

        // The service: one Bulk-Only function serving SCSI LUNs over FunctionFS.
        .target(
            name: "MassStorage",
            dependencies: [
                "BulkOnly", "SCSI", "USBDescriptors", "FunctionFS", "Backing", "Gadget", "CLibAIO", "CFunctionFSShim",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The appliance daemon: configuration, drives, control.
        .target(
            name: "Daemon",
            dependencies: [
                "SCSI", "Gadget", "MassStorage", "FunctionFS", "Backing", .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The image store: names, parts, uploads, creation of flash images.
        .target(name: "ImageStore", dependencies: ["Backing", .product(name: "Logging", package: "swift-log")]),
        // The HTTP API and web page of `umsd serve`.
        .target(
            name: "HTTPAPI",
            dependencies: [
                "ImageStore", "MassStorage", "FunctionFS", "Backing",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "umsd",
            dependencies: [
                "MassStorage", "FunctionFS", "Daemon", "ImageStore", "HTTPAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(name: "USBDescriptorsTests", dependencies: ["USBDescriptors"]),
        .testTarget(name: "BulkOnlyTests", dependencies: ["BulkOnly"]),
        .testTarget(name: "SCSITests", dependencies: ["SCSI"]),
        .testTarget(name: "BackingTests", dependencies: ["Backing"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "MassStorage"]),
        .testTarget(name: "MassStorageTests", dependencies: ["MassStorage", "FunctionFS"]),
        .testTarget(name: "ImageStoreTests", dependencies: ["ImageStore", "Backing"]),
        .testTarget(
            name: "HTTPAPITests",
            dependencies: [
                "HTTPAPI", "ImageStore", "MassStorage",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
