import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune synth --like GEOMETRY --dtype bf16 --out DIR [--seed N] [--tokenizer-from DIR]`:
/// a deterministic random-weight checkpoint with a published model's geometry.
struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a random-weight model directory with the geometry of a published model.",
        discussion: """
            For measuring memory and speed at scale without the download: config.json with the \
            model's real dimensions, deterministic weights (same seed, same bytes; sharded as \
            transformers shards them past 5 GB, one tensor in memory at a time) and the \
            tokenizer of a model on disk. Token ids past that tokenizer's vocabulary are never \
            used. Geometries: \(KnownGeometries.all.map(\.name).joined(separator: ", ")).
            """)

    @Option(help: "The geometry to reproduce.")
    var like: String

    @Option(help: "Storage type of the weights: f32, bf16 or f16.")
    var dtype: WeightDType = .bf16

    @Option(help: "Output model directory (must not exist or be empty, unless --force).")
    var out: String

    @OptionGroup var replace: ForceFlag

    @Option(help: "Seed of the weights.")
    var seed: UInt64 = 0

    @Option(help: "Model directory whose tokenizer.json is copied (default: SmolLM2-135M in the cache).")
    var tokenizerFrom: String?

    @Flag(help: "No progress bar on stderr.")
    var quiet = false

    func validate() throws {
        guard !out.isEmpty else { throw ValidationError("--out must not be empty") }
        guard dtype != .auto else { throw ValidationError("--dtype must be f32, bf16 or f16 (there is no checkpoint to keep the type of)") }
    }

    func run() throws {
        let g = try KnownGeometries.named(like)
        let source = tokenizerFrom.map { URL(fileURLWithPath: $0) } ?? Paths.defaultDecoder
        let outURL = URL(fileURLWithPath: out)
        try OutputTarget.check(outURL, inputs: [source], force: replace.force)
        let tensors = SyntheticCheckpoint.tensors(g)
        let bar = quiet ? nil : ProgressBar("synth \(g.name)", total: tensors.count, unit: "tensors")
        let stored = dtype.resolve(.f32)
        try SyntheticCheckpoint.write(g, dtype: stored, seed: seed, tokenizerSource: source, to: outURL, progress: bar)
        bar?.finish()
        print("\(outURL.path): \(g.name), \(grouped(g.parameterCount)) parameters, \(humanBytes(g.parameterCount * stored.size)) of \(stored.rawValue) weights")
    }
}
