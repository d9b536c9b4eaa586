import ArgumentParser
import GreenPrune

extension PrunePolicy.TargetMode: ExpressibleByArgument {}
extension ImportanceKind: ExpressibleByArgument {}
extension TaylorVariant: ExpressibleByArgument {}
extension GroupReduction: ExpressibleByArgument {}
extension AttentionUnit: ExpressibleByArgument {}

/// The flags of `PruneSettings`, one per key; a flag left out keeps the options file's value,
/// else the default `PruneSettings` states.
struct PruneFlags: ParsableArguments {
    @Option(help: "Fraction of each pruned layer's units to remove, in [0, 1).")
    var ratio: Double?

    @Option(help: "Fraction of ALL parameters to remove; the per-layer ratio is solved for.")
    var targetParams: Double?

    @Option(help: "With --target-params: at-least (the smallest ratio reaching the target) or closest (the ratio landing nearest it, either side) (default \(PruneSettings().targetMode.rawValue)).")
    var targetMode: PrunePolicy.TargetMode?

    @Option(help: "Importance estimator: taylor, l1, l2, random, bi (depth pruning) (default \(PruneSettings().importance.rawValue)).")
    var importance: ImportanceKind?

    @Option(help: "Taylor variant: vectorize, param_first, param_second, param_mix (default \(PruneSettings().taylor.rawValue)).")
    var taylor: TaylorVariant?

    @Option(help: "How member scores combine into a unit's: sum, mean, max, prod, first (default \(PruneSettings().groupReduction.rawValue)).")
    var groupReduction: GroupReduction?

    @Option(help: "Attention unit: kv-group (LLM-Pruner) or query-head (Torch-Pruning) (default \(PruneSettings().attentionUnit.rawValue)).")
    var attentionUnit: AttentionUnit?

    @Flag(help: "Score kv-groups as LLM-Pruner's code does (query heads h, h+G, … with KV head h).")
    var llmprunerCompat = false

    @Option(help: "Attention layers to prune, A:B half-open (default from --skip-first/--skip-last).")
    var attnLayers: String?

    @Option(help: "MLP layers to prune, C:D half-open (default from --skip-first/--skip-last).")
    var mlpLayers: String?

    @Option(help: "Layers left alone at the start when no range is given (default \(PruneSettings().skipFirst)).")
    var skipFirst: Int?

    @Option(help: "Layers left alone at the end when no range is given (default \(PruneSettings().skipLast)).")
    var skipLast: Int?

    @Flag(help: "Prune every layer to the same widths (config.json alone describes the result).")
    var uniform = false

    @Flag(help: "One threshold across layers instead of the same ratio per layer.")
    var global = false

    @Option(help: "Prune in k steps, recomputing gradients between them (default \(PruneSettings().iterativeSteps)).")
    var iterativeSteps: Int?

    @Option(help: "Round kept MLP widths up to a multiple of n.")
    var roundTo: Int?

    @Option(help: "Samples per gradient micro-batch (memory grows with it) (default \(PruneSettings().microBatch)).")
    var microBatch: Int?

    @Option(help: "Seed of the random estimator (default \(PruneSettings().seed)).")
    var seed: UInt64?

    func apply(to s: inout PruneSettings) throws {
        if let ratio { s.ratio = ratio }
        if let targetParams { s.targetParams = targetParams }
        if let targetMode { s.targetMode = targetMode }
        if let importance { s.importance = importance }
        if let taylor { s.taylor = taylor }
        if let groupReduction { s.groupReduction = groupReduction }
        if let attentionUnit { s.attentionUnit = attentionUnit }
        if llmprunerCompat { s.llmprunerCompat = true }
        if let attnLayers { s.attnLayers = try LayerRange.option(attnLayers, key: "attn_layers") }
        if let mlpLayers { s.mlpLayers = try LayerRange.option(mlpLayers, key: "mlp_layers") }
        if let skipFirst { s.skipFirst = skipFirst }
        if let skipLast { s.skipLast = skipLast }
        if uniform { s.uniform = true }
        if global { s.global = true }
        if let iterativeSteps { s.iterativeSteps = iterativeSteps }
        if let roundTo { s.roundTo = roundTo }
        if let microBatch { s.microBatch = microBatch }
        if let seed { s.seed = seed }
    }
}
