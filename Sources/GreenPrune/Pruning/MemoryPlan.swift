import Foundation

/// The peak resident memory a `prune` run will need, from config.json, the checkpoint's headers
/// and the settings, before any weight is read: planned from the allocations the code makes,
/// so a run that cannot fit is refused before it starts (`check`).
///
/// Terms (bytes, float32 = 4):
/// - weights: what the loader keeps resident under `--dtype`. An aligned F32 tensor is mapped,
///   its pages resident once read (all of them, but for an untied embedding, of which only the
///   rows of the tokens seen are read); a matrix kept in half precision (`HalfLinear`: bf16/f16
///   under `auto`, or any float matrix under `--dtype bf16|f16`) is 2 bytes per element, mapped
///   or rounded into owned halves (an untied table read row by row with pread: none); any other
///   F16/BF16 tensor is converted into a float32 copy (4 bytes per element) and its mapped pages,
///   read once by the conversion, stay cached (2 more); packed integer tensors are mapped as stored.
/// - activations (Taylor, `GradientCollector.reduceByLayer` → `LlamaGradient.accumulateByLayer`):
///   every layer input from the lowest scored layer up for all S samples of T tokens
///   ((L − low)·S·T·C), the gradient at the top of each batch (S·T·C), and per batch size b
///   (micro-batches of `microBatch`; 1 with the Fisher term) one checkpointed `LlamaTape` of N =
///   b·T rows — the shared layer tape, recompute input and backward scratch:
///   N·(5C + 4·Hd + 4·Gd + 6F) + b·H·T² + T² — and, during the forwards only, the head buffers
///   (4·N·C + 2·256·C + 256·V: 256 rows of logits at a time).
/// - gradients: one layer's seven projections at a time, twice (the engine's buffer and the
///   estimator's copy) or three times with the Fisher term (buffer, G, A).
/// - writing: the pruned directory is written one tensor at a time after the gradients are gone:
///   float32 gathered and encoded (2 × 4 bytes × the largest tensor), halves cut straight into
///   the encoded bytes (2 bytes × the largest tensor); and the pages of the tensors the scoring
///   never maps (an untied embedding table, read row by row), which the writer reads whole
///   through the mapping (`writeReadBytes`).
/// - runtime: the process before any model (Swift runtime, OpenBLAS threads, tokenizer,
///   calibration text), measured.
public struct MemoryPlan: Sendable, Equatable {
    public var weightBytes: Int
    public var activationBytes: Int
    public var gradientBytes: Int
    /// The write phase's own buffers (after the scoring's are freed).
    public var writeBytes: Int

    /// Resident memory of the process before it loads a model.
    public static let runtimeBytes = 80 << 20

    /// weights + runtime + the larger of the scoring and writing phases.
    public var peakBytes: Int { weightBytes + Self.runtimeBytes + max(activationBytes + gradientBytes, writeBytes) }

    /// One line: the peak and its terms.
    public var summary: String {
        "≈ \(humanBytes(peakBytes)) at peak (weights \(humanBytes(weightBytes)), activations \(humanBytes(activationBytes)), "
            + "gradients \(humanBytes(gradientBytes)), runtime \(humanBytes(Self.runtimeBytes)))"
    }

    /// Resident bytes of a checkpoint's weights as the loader holds them when it keeps them as
    /// `dtype` says (see the type's notes).
    public static func residentWeightBytes(_ checkpoint: SafeTensorsReader, tiedEmbeddings: Bool, dtype: WeightDType = .f32) -> Int {
        var total = 0
        for name in checkpoint.names {
            guard let info = checkpoint.info(name) else { continue }
            if readByRow(name, info, tiedEmbeddings: tiedEmbeddings, dtype: dtype) { continue }
            let n = info.elementCount
            if keptHalf(info, dtype: dtype) {
                total += 2 * n
                continue
            }
            switch info.dtype {
            case .f32: total += 4 * n
            case .f16, .bf16: total += 6 * n
            case .f64: total += 12 * n
            default: total += n * info.dtype.size
            }
        }
        return total
    }

    /// Bytes of the checkpoint's tensors that `residentWeightBytes` leaves out because the
    /// scoring reads them row by row (an untied embedding table under a dtype that keeps it as
    /// stored): writing the pruned directory copies them through the mapping, so their pages are
    /// resident then.
    public static func writeReadBytes(_ checkpoint: SafeTensorsReader, tiedEmbeddings: Bool, dtype: WeightDType = .f32) -> Int {
        checkpoint.names.reduce(0) { total, name in
            guard let info = checkpoint.info(name), readByRow(name, info, tiedEmbeddings: tiedEmbeddings, dtype: dtype) else { return total }
            return total + info.elementCount * info.dtype.size
        }
    }

    /// A float matrix the loader keeps in half precision under `dtype` (`HalfLinear`).
    private static func keptHalf(_ info: SafeTensorInfo, dtype: WeightDType) -> Bool {
        [.f32, .f16, .bf16, .f64].contains(info.dtype) && info.shape.count == 2 && dtype.resolve(info.dtype) != .f32
    }

    /// An untied embedding table that stays in its file (F32 mapped, or kept in half precision)
    /// and is read a row per token, never held whole; converted to a float32 copy otherwise.
    private static func readByRow(_ name: String, _ info: SafeTensorInfo, tiedEmbeddings: Bool, dtype: WeightDType) -> Bool {
        name == LlamaNames.embedding && !tiedEmbeddings && (info.dtype == .f32 || keptHalf(info, dtype: dtype))
    }

    /// The plan of `prune` with `settings` on a model of geometry `g` whose weights take
    /// `weightBytes` resident and are kept (and written) as `storage` (F32, BF16 or F16);
    /// `writeReadBytes` more become resident while the output is written (`writeReadBytes(_:tiedEmbeddings:dtype:)`).
    public static func prune(_ g: PruneGeometry, weightBytes: Int, settings s: PruneSettings, storage: DType = .f32,
                             writeReadBytes: Int = 0) throws -> MemoryPlan {
        let c = g.hidden, hd = g.headDim, t = s.calibrationLen, samples = s.numExamples
        let q = (g.layers.map(\.numHeads).max() ?? 0) * hd, kv = (g.layers.map(\.numKVHeads).max() ?? 0) * hd
        let heads = g.layers.map(\.numHeads).max() ?? 0, f = g.layers.map(\.intermediate).max() ?? 0
        let largest = max(g.vocab * c, g.layers.map { max($0.numHeads * hd, $0.intermediate) * c }.max() ?? 0)
        var plan = MemoryPlan(weightBytes: weightBytes, activationBytes: 0, gradientBytes: 0,
                              writeBytes: (storage == .f32 ? 4 * 2 * largest : 2 * largest) + writeReadBytes)
        func tape(_ b: Int) -> Int {
            let n = b * t
            return n * (5 * c + 4 * q + 4 * kv + 6 * f) + b * heads * t * t + t * t
        }
        func head(_ b: Int) -> Int { 4 * b * t * c + 2 * 256 * c + 256 * g.vocab }
        switch s.importance {
        case .taylor:
            let policy = try s.policy(layers: g.layers.count)
            let scored = Set(policy.attnLayers.layers + policy.mlpLayers.layers)
            guard let low = scored.min() else { return plan }
            let fisher = TaylorImportance(variant: s.taylor).needsFisher
            let mb = fisher ? 1 : max(1, s.microBatch)
            let sizes = Set([min(mb, samples), samples % mb].filter { $0 > 0 })
            let inputs = (g.layers.count - low) * samples * t * c + samples * t * c
            let tapes = sizes.map(tape).reduce(0, +)
            let layerParams = scored.map { l -> Int in
                let d = g.layers[l]
                return 2 * c * d.numHeads * hd + 2 * c * d.numKVHeads * hd + 3 * c * d.intermediate
            }.max() ?? 0
            // The forwards hold the head buffers; the backward the first layer's gradients.
            plan.activationBytes = 4 * (inputs + tapes)
            plan.gradientBytes = 4 * max(sizes.map(head).reduce(0, +), layerParams * (fisher ? 3 : 2))
        case .bi:
            let n = min(samples, max(1, s.microBatch)) * t
            plan.activationBytes = 4 * (2 * n * c + n * (c + q + 2 * kv) + min(n, 1024) * (f + min(f, 256)) + t * t)
        case .random, .l1, .l2:
            break
        }
        return plan
    }

    /// Throws a one-line error naming `what` when the plan's peak exceeds `available` bytes.
    public func check(available: Int, what: String) throws {
        guard peakBytes > available else { return }
        throw InputError(what, "needs \(summary), more than the \(humanBytes(available)) available; "
                         + "prune a smaller model, lower --num-examples/--calibration-len, or pass --skip-memory-check")
    }

    /// MemAvailable of /proc/meminfo in bytes (nil where there is none).
    public static func memoryAvailable() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }
}

extension PruneGeometry {
    /// The widths of a Llama checkpoint from its headers alone (q, k and gate shapes per layer),
    /// for planning before the weights are read.
    public init(config c: LlamaConfig, checkpoint: SafeTensorsReader) throws {
        var layers: [BlockDims] = []
        for l in 0..<c.numLayers {
            guard let q = checkpoint.info(LlamaNames.q(l)), let k = checkpoint.info(LlamaNames.k(l)),
                  let gate = checkpoint.info(LlamaNames.gate(l)), q.shape.count == 2, k.shape.count == 2, gate.shape.count == 2 else {
                throw InputError(checkpoint.files.first?.url.path ?? "safetensors", "layer \(l) lacks its q/k/gate projections")
            }
            layers.append(BlockDims(numHeads: q.shape[0] / c.headDim, numKVHeads: k.shape[0] / c.headDim, intermediate: gate.shape[0]))
        }
        self.init(hidden: c.hiddenSize, headDim: c.headDim, vocab: c.vocabSize, tiedEmbeddings: c.tieWordEmbeddings, layers: layers)
    }
}
