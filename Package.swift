// swift-tools-version:6.0
import PackageDescription

/// Links system libraries: the shared libraries in debug builds (tests), the static archives of
/// the same -dev packages in release builds. Linked dynamically, libcrypto, SQLite, zstd and
/// xxHash cost every process ≈ 1.5 ms before `main`, most of it the dynamic linker's symbol
/// lookups and relocations for libcrypto (`wledger status` of a clean SmolLM2 tree 9.1 → 7.4 ms,
/// `wledger --version` 6.6 → 5.2 ms; hyperfine, 60 runs each).
func systemLink(_ names: String...) -> [LinkerSetting] {
    names.map { .linkedLibrary($0, .when(configuration: .debug)) }
        + [.unsafeFlags(names.flatMap { ["-Xlinker", "-l:lib\($0).a"] }, .when(configuration: .release))]
}

/// wledger: version control for edits to large-language-model weights.
///
/// Dependencies point downward: CLI → WLedgerKit → (Engine, Ops, Ledger, Codec, LinAlg, TensorIO) → C shims.
/// Only `LinAlg` touches BLAS/LAPACK (loaded at first use, see BLASKernel), only `Codec` zstd, only `Ledger` SQLite, only
/// `TensorIO` the hash libraries; each through one wrapper file.
let package = Package(
    name: "wledger",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "wledger", targets: ["wledger"]),
        .library(name: "WLedgerKit", targets: ["WLedgerKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries (Debian packages named in `providers`), headers only: the targets that
        // use them link them (`systemLink`), statically in release builds.
        .systemLibrary(name: "CZstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // OpenBLAS's headers only: no pkgConfig, because its `-lopenblas` would link what CBLASLoader opens at first use.
        .systemLibrary(name: "COpenBLAS", providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),
        .systemLibrary(name: "CCrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CXXHash", providers: [.apt(["libxxhash-dev"])]),
        // Small C kernels: F16/BF16 conversion (F16C), byte-plane shuffle, XOR diff, ΔW statistics.
        .target(name: "CShims", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        // OpenBLAS + LAPACK opened on first use (dlopen), typed by the library's own headers.
        .target(name: "CBLASLoader", dependencies: ["COpenBLAS"], linkerSettings: [.linkedLibrary("dl")]),

        .target(name: "TensorIO", dependencies: ["CShims", "CCrypto", "CXXHash"], linkerSettings: systemLink("crypto", "xxhash")),
        .target(name: "Codec", dependencies: ["TensorIO", "CZstd", "CShims"], linkerSettings: systemLink("zstd")),
        .target(name: "LinAlg", dependencies: ["TensorIO", "CBLASLoader", "CShims"], swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .target(name: "Ledger", dependencies: ["TensorIO", "Codec", "CSQLite"], linkerSettings: systemLink("sqlite3")),
        // Weight-space algorithms: δ statistics, RECT, PRUNE, the sphere projection.
        .target(name: "Ops", dependencies: ["TensorIO", "LinAlg"]),
        // CPU inference for LLaMA-family models: tokenizer, forward pass, scoring.
        // Optimized even in debug builds: the real-model tests run forward and backward passes.
        .target(name: "Engine", dependencies: ["TensorIO", "LinAlg", "CShims"], swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .target(name: "WLedgerKit", dependencies: ["TensorIO", "Codec", "LinAlg", "Ledger", "Ops", "Engine", "CShims"]),
        .executableTarget(name: "wledger", dependencies: [
            "WLedgerKit", "Ops", "Engine", "LinAlg",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Benchmarks that need library access (bench/swift; results in BENCHMARKS.md).
        .executableTarget(name: "wledger-bench", dependencies: ["WLedgerKit", "Ledger", "LinAlg", "Ops", "TensorIO", "Engine"], path: "bench/swift"),

        // libFuzzer targets for every parser of untrusted bytes (Fuzz/; see README "Fuzzing").
        // A normal build makes a replay tool; `-Xswiftc -DFUZZING -Xswiftc -sanitize=fuzzer,address`
        // makes the fuzzer.
        .executableTarget(name: "wledger-fuzz", dependencies: ["TensorIO", "Codec", "Engine", "WLedgerKit"], path: "Fuzz",
                          exclude: ["corpus", "regressions", "run.sh"], swiftSettings: [.unsafeFlags(["-parse-as-library"])]),

        // Test helpers: fixture paths, temp dirs, running the binary, simulated edits.
        .target(name: "TestSupport", dependencies: ["TensorIO"], path: "Sources/TestSupport"),

        .testTarget(name: "TensorIOTests", dependencies: ["TensorIO", "CXXHash", "TestSupport"]),
        .testTarget(name: "CodecTests", dependencies: ["Codec", "TensorIO", "TestSupport"]),
        .testTarget(name: "LinAlgTests", dependencies: ["LinAlg", "TensorIO", "CBLASLoader"]),
        .testTarget(name: "OpsTests", dependencies: ["Ops", "LinAlg", "TensorIO"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "TensorIO", "LinAlg", "CShims", "TestSupport"]),
        .testTarget(name: "LedgerTests", dependencies: ["Ledger", "TensorIO", "TestSupport"]),
        .testTarget(name: "WLedgerKitTests", dependencies: ["WLedgerKit", "Ledger", "TensorIO", "LinAlg", "Codec", "Engine", "CShims", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TensorIO", "LinAlg", "TestSupport"]),
    ]
)

// Release builds link the Swift runtime and Foundation statically (`-static-stdlib`, set on every
// Swift target because it also picks the modules they compile against): the process reaches
// `main` in ~5 instead of ~12 ms, without symbol lookups across a dozen shared Swift libraries,
// a tenth of a small commit. The binary grows from 16 to 87 MB, most of it ICU's data.
// Test targets and their helpers import XCTest, which has no static build: they stay dynamic.
for target in package.targets where target.type != .system && target.type != .test && !target.name.hasPrefix("C")
    && target.name != "TestSupport" {
    let flag = SwiftSetting.unsafeFlags(["-static-stdlib"], .when(configuration: .release))
    target.swiftSettings = (target.swiftSettings ?? []) + [flag]
    target.linkerSettings = (target.linkerSettings ?? []) + [.unsafeFlags(["-static-stdlib"], .when(configuration: .release))]
}
