import CQuantKernels

/// Choices between kernel paths that compute the same products, held by what runs them
/// (`LlamaModel.kernelOptions`, copied to its layers' `QuantizedLinear.options`) and passed down
/// to `attentionForward` (other callers take `.standard`): tests and benchmarks set the path they
/// want on their own model instead of switching the whole process. The sgemm paths agree to float rounding; AMX
/// rounds activations to bf16 (see `QuantizedLinear.usesAMX`).
public struct KernelOptions: Sendable, Equatable {
    /// Float-activation products of quantized layers may run on AMX bf16 tiles (where the CPU
    /// and kernel offer them: `amxAvailable`).
    public var amx: Bool
    /// Most weights a quantized layer expands at once (the scratch tile is 4 bytes per element
    /// on sgemm, 2 on AMX). On SmolLM2 INT4 at 512-token batches, 2²⁰ and 2¹⁹ score at the same
    /// speed (2¹⁹ holds 0.7 MB less); 2¹⁸ saves 0.7 MB more but scores about 10% slower.
    public var tileElements: Int
    /// Attention takes the grouped-query path (see `groupedAttentionForward`) where it applies.
    public var groupedHeads: Bool
    /// Attention runs heads concurrently (single-threaded sgemm each) rather than one after
    /// another with multi-threaded sgemm.
    public var parallelOverHeads: Bool
    /// Float-activation products of bf16 weights (`HalfLinear`) and of quantized layers that take
    /// neither AMX tiles nor the int16 kernel (`QuantizedLinear.usesBF16Dot`) multiply on AVX-512 BF16 dot products
    /// (activations rounded to bf16 once per call, weights expanded to bf16 pairs, float32 sums)
    /// where the CPU has them (`bf16DotAvailable`), rather than expanded to float32 tiles for
    /// sgemm. On by default only where VDPBF16PS outruns float32 FMA on this CPU
    /// (`bf16DotPreferred`): on a Xeon that issues it at a quarter of VFMADD's rate the kernel
    /// peaks at half of sgemm's speed whatever its blocking.
    public var bf16Dot: Bool
    /// Float-activation products of quantized layers that do not take AMX tiles
    /// (`QuantizedLinear.usesInt16Dot`; it goes before the bf16 dot-product kernel) multiply on int16 dot products
    /// (activations quantized per row to int16, weight codes expanded to int16, exact int32 sums
    /// flushed to float32 per group): AVX-512 VNNI, or AVX2 where the CPU has no VNNI
    /// (`int16DotISA`), rather than expanded to float32 tiles for sgemm. On by default
    /// where those integer steps outrun float32 FMA on this CPU (`int16DotPreferred`).
    public var int16Dot: Bool
    /// Shortest window (new tokens T) whose attention takes the blockwise, online-softmax path
    /// (`blockwiseAttentionForward`: no score row longer than a key block) when no probabilities
    /// are kept; `Int.max` never takes it. Shorter windows keep the grouped-query or per-head path.
    public var blockwiseFromTime: Int
    /// The blockwise path runs each (sequence, key/value head, query block) as one fused C kernel
    /// (`gpk_flash_attention`: score tiles, online softmax and P·V in registers) rather than as
    /// sgemm calls on 64-wide products; `false` keeps the sgemm path, the reference it is tested against.
    public var fusedAttention: Bool
    /// A decoder whose projections all compute on the calling thread (float32 weights, bf16/f16
    /// weights expanded to float32 tiles, quantized weights on the int16 kernel or sgemm tiles:
    /// `LinearLayer.computesOnCallingThread`) runs
    /// each layer's work outside attention (norms, projections, RoPE, SwiGLU, residual adds) as
    /// bands of rows, each band on one thread with single-threaded sgemm, one parallel section
    /// per layer (`LlamaModel.runLayersInRowBands`), rather than one multi-threaded call per
    /// product and one parallel pass per elementwise step. They agree to float32 rounding
    /// (OpenBLAS blocks a band's products differently); on the int16 kernel, bit for bit.
    public var rowBands: Bool
    /// Long-window attention (the fused kernel, `blockwiseFromTime` and up) of a model whose
    /// query, key and value projections multiply on bf16 dot products (bf16 weights on `bf16Dot`:
    /// their inputs are already rounded to bf16) multiplies on them too
    /// (`gpk_flash_attention_bf16`: queries, keys, values and probabilities rounded to bf16,
    /// float32 sums and softmax), rather than in float32. The model decides from its weights
    /// (`LlamaModel.attentionInBF16`); a float32 model's attention never takes it. With bf16
    /// weights on a CPU whose dot products outrun FMA, attention is what keeps long windows slow.
    public var bf16Attention: Bool

    public init(amx: Bool = KernelOptions.amxAvailable && GreenPruneEnvironment.process.amx,
                tileElements: Int = 1 << 19, groupedHeads: Bool = true, parallelOverHeads: Bool = true,
                bf16Dot: Bool = KernelOptions.bf16DotPreferred, int16Dot: Bool = KernelOptions.int16DotPreferred && GreenPruneEnvironment.process.int16Dot,
                blockwiseFromTime: Int = attentionGroupedMaxTime + 1,
                fusedAttention: Bool = true, rowBands: Bool = true,
                bf16Attention: Bool = GreenPruneEnvironment.process.bf16Attention) {
        self.amx = amx
        self.tileElements = tileElements
        self.groupedHeads = groupedHeads
        self.parallelOverHeads = parallelOverHeads
        self.bf16Dot = bf16Dot
        self.int16Dot = int16Dot
        self.blockwiseFromTime = max(1, blockwiseFromTime)
        self.fusedAttention = fusedAttention
        self.rowBands = rowBands
        self.bf16Attention = bf16Attention
    }

    /// The defaults: every fast path on, AMX where the CPU has it unless `GREENPRUNE_AMX=0`, the
    /// int16 dot-product kernel where it is preferred unless `GREENPRUNE_INT16_DOT=0`, bf16
    /// attention for models on bf16 dot products unless `GREENPRUNE_BF16_ATTENTION=0`.
    public static let standard = KernelOptions()

    /// The choices that change a product's rounding or its kernel, as results.json records them
    /// (`greenprune.kernels`): AMX tiles, bf16 dot products, the int16 kernel, row bands, bf16
    /// attention (where the weights let it apply).
    public var recorded: [String: Bool] {
        ["amx": amx, "bf16_dot": bf16Dot, "int16_dot": int16Dot, "row_bands": rowBands, "bf16_attention": bf16Attention]
    }

    /// Whether this CPU and kernel build can multiply on AMX bf16 tiles.
    public static let amxAvailable = qk_amx_bf16_available() != 0

    /// Whether this CPU has AVX-512 BF16 dot products (VDPBF16PS).
    public static let bf16DotAvailable = qk_avx512_bf16_available() != 0

    /// Multiply-adds per second of VDPBF16PS over float32 FMA on this CPU, timed once on first
    /// use (`qk_bf16_dot_speedup`, a few milliseconds); 0 without AVX-512 BF16.
    public static let bf16DotSpeedup = qk_bf16_dot_speedup()

    /// Whether VDPBF16PS is known from the CPU's identity to outrun float32 FMA (AVX-512 BF16 on
    /// AMD Zen 4 and later: `qk_bf16_dot_known_fast`), so that the default needs no timing.
    public static let bf16DotKnownFast = qk_bf16_dot_known_fast() != 0

    /// Whether `bf16Dot` is on by default: the CPU has AVX-512 BF16 and its dot products do at
    /// least a quarter more multiply-adds per second than float32 FMA, margin enough for the
    /// packing and the bf16 rounding of the activations to pay off. Known from the CPU where it
    /// can be (`bf16DotKnownFast`), timed only elsewhere, for the reason `int16DotPreferred` gives:
    /// a default read from a timing under load can differ between processes, and with it the
    /// rounding of every bf16 product.
    public static let bf16DotPreferred = bf16DotAvailable && (bf16DotKnownFast || bf16DotSpeedup >= 1.25)

    /// Whether this CPU can run the int16 kernel: AVX-512 VNNI (VPDPWSSD) or AVX2 with FMA
    /// (VPMADDWD + VPADDD).
    public static let int16DotAvailable = qk_int16_dot_available() != 0

    /// The instruction set the int16 kernel runs on here (`.portable`: none).
    public static let int16DotISA = Int8Kernels.ISA(rawValue: qk_int16_dot_isa()) ?? .portable

    /// Multiply-adds per second of the int16 kernel's integer step over float32 FMA of the same
    /// width on this CPU, timed once on first use (`qk_int16_dot_speedup`, a few milliseconds); 0
    /// without the kernel.
    public static let int16DotSpeedup = qk_int16_dot_speedup()

    /// Whether the int16 kernel's integer step is known from the CPU's identity to outrun float32
    /// FMA (AVX-512 VNNI, or AVX2 on AMD Zen: `qk_int16_dot_known_fast`), so that the default
    /// needs no timing.
    public static let int16DotKnownFast = qk_int16_dot_known_fast() != 0

    /// Whether `int16Dot` is on by default: the CPU runs the int16 kernel and its integer step does
    /// at least a quarter more multiply-adds per second than float32 FMA, margin enough for
    /// quantizing the activations, expanding the codes and flushing the int32 sums to pay off.
    /// Known from the CPU where it can be (`int16DotKnownFast`), timed only elsewhere: the kernel
    /// changes every quantized product's rounding, and a timed ratio read under load once dropped
    /// below the threshold in one process in six (Zen 3 under a sweep's energy tracker), so
    /// rounds of the same evaluation scored different numbers.
    public static let int16DotPreferred = int16DotAvailable && (int16DotKnownFast || int16DotSpeedup >= 1.25)
}
