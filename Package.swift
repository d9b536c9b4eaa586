// swift-tools-version:5.10
// GreenPrune: measure what compressing an LLM saves (energy, memory, time) and what it costs (accuracy).
import PackageDescription

let package = Package(
    name: "GreenPrune",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "greenprune", targets: ["greenprune"]),
        .executable(name: "greenprune-bench", targets: ["greenprune-bench"]),
        .library(name: "GreenPrune", targets: ["GreenPrune"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System libraries found through pkg-config (Debian: libopenblas-dev, libhdf5-dev). The
        // library and CLI load libhdf5 at run time (CKernels/hdf5_runtime.c), so the binary does
        // not carry it and its ~40 dependencies; the tests link it to check that loader.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        // Vectorised row kernels (exp, softmax sums, SwiGLU, argmax) for the forward pass.
        // The bf16 attention kernel rounds as the quantized kernels do (qk_bf16_round).
        .target(name: "CKernels", dependencies: ["CQuantKernels"], path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O2"])]),
        // Int8 GEMM kernels (portable, AVX2, AVX-512 VNNI chosen at run time) for quantized models.
        .target(name: "CQuantKernels", path: "Sources/CQuantKernels"),
        // Checked optimisation (-O), not -Ounchecked: that would also drop the bounds checks and
        // preconditions of the readers and validators, and the hot loops (UnsafePointer walks,
        // the C kernels above) have none to remove, so it buys no speed.
        .target(
            name: "GreenPrune",
            dependencies: ["COpenBLAS", "CKernels", "CQuantKernels", .product(name: "Yams", package: "Yams")]
        ),
        .executableTarget(
            name: "greenprune",
            dependencies: ["GreenPrune", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The benchmarks behind the README's figures (scripts/bench*.sh), kept out of the product CLI.
        .executableTarget(
            name: "greenprune-bench",
            dependencies: ["GreenPrune", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Fuzz harness over the readers (docs/ARCHITECTURE.md, scripts/fuzz.sh): a corpus replayer,
        // or a libFuzzer target when built with -sanitize=fuzzer -DGREENPRUNE_LIBFUZZER.
        .executableTarget(name: "greenprune-fuzz", dependencies: ["GreenPrune"], path: "Sources/GreenPruneFuzz"),
        .testTarget(name: "GreenPruneTests", dependencies: ["GreenPrune", "CHDF5", "CKernels"], exclude: ["Fixtures"]),
    ]
)
