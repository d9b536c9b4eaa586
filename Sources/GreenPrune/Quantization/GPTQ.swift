import COpenBLAS
import Foundation

/// How `greenprune quantize --method gptq` calibrates (recorded in quantization.json).
///
/// GPTQ (Frantar et al., 2022) quantizes a Linear's weight one input column at a time and moves
/// each column's rounding error onto the columns not yet quantized, weighted by the inverse
/// Hessian of the layer's reconstruction loss ‖X·Wᵀ − X·Qᵀ‖², H = 2·XᵀX over calibration inputs.
/// The stored format is unchanged (same codes, scales and zero points as round-to-nearest), so
/// every reader of compressed-tensors / GreenPrune loads a GPTQ model as it loads an RTN one.
public struct GPTQOptions: Codable, Equatable, Sendable {
    /// JSONL file with a `text` field (default: the C4 sample under the data directory).
    public var calibration: String
    /// Calibration documents (each cut to `calibrationLength` tokens).
    public var numExamples: Int
    /// Tokens per calibration sample.
    public var calibrationLength: Int
    /// λ added to H's diagonal as a fraction of its mean diagonal (GPTQ's percdamp).
    public var dampening: Double
    /// Columns quantized between two lazy (sgemm) updates of the rest of W.
    public var blockSize: Int
    /// Quantize columns by decreasing H[i,i] (GPTQ's act-order / desc_act) with every scale
    /// fixed from the original weights first (static groups: storage needs no g_idx).
    public var actOrder: Bool
    /// Decoders: quantize layer by layer, each layer's Hessians from inputs that went through the
    /// already quantized layers (`HessianCollection.quantizeSequential`); false: every Hessian
    /// from the float model in one pass (`collect`, always the case for encoders).
    public var sequential: Bool
    /// FNV-1a hash of the calibration ids (filled in by the run).
    public var calibrationIdsHash: String?

    enum CodingKeys: String, CodingKey {
        case calibration, numExamples = "num_examples", calibrationLength = "calibration_len",
             dampening, blockSize = "block_size", actOrder = "act_order", sequential, calibrationIdsHash = "calibration_ids_hash"
    }

    /// Validates the flags (one-line errors naming the flag).
    public init(calibration: String, numExamples: Int = 128, calibrationLength: Int = 256,
                dampening: Double = 0.01, blockSize: Int = 128, actOrder: Bool = true, sequential: Bool = true) throws {
        guard numExamples >= 1 else { throw InputError("--num-examples", "must be at least 1") }
        guard calibrationLength >= 2 else { throw InputError("--calibration-len", "must be at least 2") }
        guard dampening > 0, dampening < 1 else { throw InputError("--dampening", "\(dampening) must be in (0, 1)") }
        guard blockSize >= 1 else { throw InputError("--block-size", "must be at least 1") }
        self.calibration = calibration; self.numExamples = numExamples
        self.calibrationLength = calibrationLength; self.dampening = dampening; self.blockSize = blockSize
        self.actOrder = actOrder
        self.sequential = sequential
    }
}

/// The GPTQ solver over one weight matrix.
public enum GPTQ {
    /// Upper Cholesky factor U of (H + λI)⁻¹, row-major (cols, cols), with H⁻¹ = UᵀU, where
    /// λ = `dampening` · mean(diag H). H (cols, cols) is symmetric; a column with H[i,i] = 0 (an
    /// input that never fired) gets H[i,i] = 1 and is reported in `dead` so its weights can be
    /// zeroed (they never touch the output). Doubles through LAPACK (dpotrf/dpotri).
    public static func inverseCholesky(_ h: [Float], cols n: Int, dampening: Double,
                                       name: String) throws -> (u: [Float], dead: [Bool]) {
        precondition(h.count == n * n)
        var a = [Double](repeating: 0, count: n * n)
        var dead = [Bool](repeating: false, count: n)
        var meanDiag = 0.0
        for i in 0 ..< n {
            for j in 0 ..< n { a[i * n + j] = Double(h[i * n + j]) }
            if h[i * n + i] == 0 { dead[i] = true; a[i * n + i] = 1 }
            meanDiag += a[i * n + i]
        }
        meanDiag /= Double(max(n, 1))
        guard meanDiag.isFinite else { throw InputError(name, "calibration Hessian is not finite") }
        let damp = dampening * meanDiag
        for i in 0 ..< n { a[i * n + i] += damp }
        // Row-major symmetric = column-major symmetric: factor and invert in place.
        var N = Int32(n), lda = Int32(n), info: Int32 = 0
        var lower = Int8(UInt8(ascii: "L")), upper = Int8(UInt8(ascii: "U"))
        dpotrf_(&lower, &N, &a, &lda, &info)
        guard info == 0 else { throw InputError(name, "calibration Hessian is not positive definite (dpotrf info \(info)); raise --dampening") }
        dpotri_(&lower, &N, &a, &lda, &info)
        guard info == 0 else { throw InputError(name, "cannot invert the calibration Hessian (dpotri info \(info))") }
        // dpotri filled the lower triangle (column-major): a[i + j·n], i ≥ j. Mirror it.
        for j in 0 ..< n { for i in j + 1 ..< n { a[j + i * n] = a[i + j * n] } }
        dpotrf_(&upper, &N, &a, &lda, &info)
        guard info == 0 else { throw InputError(name, "inverse Hessian is not positive definite (dpotrf info \(info)); raise --dampening") }
        // Column-major upper U(i, j) = a[i + j·n] for i ≤ j → row-major u[i·n + j].
        var u = [Float](repeating: 0, count: n * n)
        for i in 0 ..< n { for j in i ..< n { u[i * n + j] = Float(a[i + j * n]) } }
        return (u, dead)
    }

    /// Quantizes W (rows, cols) row-major with `scheme`, compensating each column's rounding
    /// error through U = chol((H + λI)⁻¹)ᵀ (see `inverseCholesky`).
    ///
    /// Scales: per tensor / per channel from the whole original row(s), as round-to-nearest does;
    /// per group from the group's columns as they stand when GPTQ reaches the group's first
    /// column (errors of earlier columns already applied), or with `actOrder` from the original
    /// weights before any column moves (columns then go by decreasing H[i,i]). With a diagonal H
    /// (uncorrelated inputs) nothing moves and the result equals `scheme.quantize`.
    public static func quantize(_ w: UnsafeBufferPointer<Float>, rows: Int, cols: Int, hessian h: [Float],
                                scheme: QuantScheme, dampening: Double = 0.01, blockSize: Int = 128,
                                actOrder: Bool = false, name: String) throws -> QuantizedTensor {
        try scheme.validate(cols: cols, name: name)
        guard w.count == rows * cols else { throw InputError(name, "has \(w.count) values, expected \(rows)×\(cols)") }
        guard h.count == cols * cols else { throw InputError(name, "Hessian has \(h.count) values, expected \(cols)×\(cols)") }
        for i in 0 ..< w.count where !w[i].isFinite { throw InputError(name, "has a non-finite weight at index \(i)") }
        // Column order: as stored, or (act-order) by decreasing H[i,i], the most active inputs first
        // while many columns remain to absorb their error.
        var perm = Array(0 ..< cols)
        if actOrder { perm.sort { (h[$0 * cols + $0], $1) > (h[$1 * cols + $1], $0) } }
        var hp = h
        if actOrder { for i in 0 ..< cols { for j in 0 ..< cols { hp[i * cols + j] = h[perm[i] * cols + perm[j]] } } }
        let (u, deadP) = try inverseCholesky(hp, cols: cols, dampening: dampening, name: name)
        var dead = [Bool](repeating: false, count: cols)
        for p in 0 ..< cols where deadP[p] { dead[perm[p]] = true }

        // Wᵀ (cols, rows) in processing order: position p holds original column perm[p], contiguous.
        var wt = [Float](repeating: 0, count: rows * cols)
        for p in 0 ..< cols { let c = perm[p]; for r in 0 ..< rows { wt[p * rows + r] = dead[c] ? 0 : w[r * cols + c] } }
        let glen = scheme.groupLength(cols: cols)
        let gpr = scheme.granularity == .group ? cols / glen : 1
        var scales = [Float](repeating: 0, count: scheme.granularity == .tensor ? 1 : rows * gpr)
        var zeros = [Int8](repeating: 0, count: scales.count)
        // Parameters of group g from the current values of its columns (positions holding them).
        var posOf = [Int](repeating: 0, count: cols)
        for p in 0 ..< cols { posOf[perm[p]] = p }
        func setParameters(group g: Int) {
            let c0 = scheme.granularity == .group ? g * glen : 0, c1 = scheme.granularity == .group ? c0 + glen : cols
            if scheme.granularity == .tensor {
                let p = wt.withUnsafeBufferPointer { scheme.parameters(block: $0.baseAddress!, count: $0.count) }
                scales[0] = p.scale; zeros[0] = Int8(p.zero)
                return
            }
            var block = [Float](repeating: 0, count: c1 - c0)
            for r in 0 ..< rows {
                for c in c0 ..< c1 { block[c - c0] = wt[posOf[c] * rows + r] }
                let p = block.withUnsafeBufferPointer { scheme.parameters(block: $0.baseAddress!, count: $0.count) }
                scales[r * gpr + g] = p.scale; zeros[r * gpr + g] = Int8(p.zero)
            }
        }
        // Static parameters (all groups from the original weights) unless groups are met in
        // storage order, where each group's scales follow the errors already moved into it.
        let dynamicGroups = scheme.granularity == .group && !actOrder
        if !dynamicGroups { for g in 0 ..< gpr { setParameters(group: g) } }

        var codes = [Int8](repeating: 0, count: rows * cols)
        let lo = Float(scheme.qmin), hi = Float(scheme.qmax)
        let bs = max(1, blockSize)
        var err = [Float](repeating: 0, count: bs * rows)       // (block columns, rows)
        var c1 = 0
        while c1 < cols {
            let c2 = min(cols, c1 + bs), nb = c2 - c1
            for p in c1 ..< c2 {
                let c = perm[p]
                if dynamicGroups, c % glen == 0 { setParameters(group: c / glen) }
                let d = u[p * cols + p]
                let g = scheme.granularity == .group ? c / glen : 0
                wt.withUnsafeMutableBufferPointer { wtp in
                    err.withUnsafeMutableBufferPointer { ep in
                        let col = wtp.baseAddress! + p * rows
                        let e = ep.baseAddress! + (p - c1) * rows
                        for r in 0 ..< rows {
                            let s = scheme.granularity == .tensor ? 0 : r * gpr + g
                            let scale = scales[s], z = Float(zeros[s])
                            let q = min(max((col[r] / scale + z).rounded(.toNearestOrEven), lo), hi)
                            codes[r * cols + c] = Int8(q)
                            e[r] = (col[r] - (q - z) * scale) / d
                        }
                        // Within the block: the later columns absorb this column's error.
                        for j in p + 1 ..< c2 {
                            let f = u[p * cols + j]
                            if f == 0 { continue }
                            let cj = wtp.baseAddress! + j * rows
                            for r in 0 ..< rows { cj[r] -= e[r] * f }
                        }
                    }
                }
            }
            // Lazy batch update: Wᵀ[c2..<cols, :] −= U[c1..<c2, c2..<cols]ᵀ · Err (nb, rows).
            if c2 < cols {
                u.withUnsafeBufferPointer { up in
                    err.withUnsafeBufferPointer { ep in
                        wt.withUnsafeMutableBufferPointer { wtp in
                            sgemm(transA: true, m: cols - c2, n: rows, k: nb, alpha: -1,
                                  a: up.baseAddress! + c1 * cols + c2, lda: cols,
                                  b: ep.baseAddress!, ldb: rows,
                                  beta: 1, c: wtp.baseAddress! + c2 * rows, ldc: rows)
                        }
                    }
                }
            }
            c1 = c2
        }
        return QuantizedTensor(scheme: scheme, rows: rows, cols: cols, codes: codes, scales: scales,
                               zeroPoints: scheme.symmetric ? nil : zeros)
    }

    /// Layer reconstruction loss tr((W − Ŵ)·H·(W − Ŵ)ᵀ) = Σ over calibration rows of
    /// ‖x·(W − Ŵ)ᵀ‖² when H = XᵀX: what GPTQ minimises, for reports and tests (one sgemm).
    public static func reconstructionLoss(_ w: UnsafeBufferPointer<Float>, _ wq: [Float], rows: Int, cols: Int, hessian h: [Float]) -> Double {
        var d = [Float](repeating: 0, count: rows * cols)
        for i in 0 ..< rows * cols { d[i] = w[i] - wq[i] }
        var dh = [Float](repeating: 0, count: rows * cols)
        d.withUnsafeBufferPointer { dp in
            h.withUnsafeBufferPointer { hp in
                dh.withUnsafeMutableBufferPointer { op in
                    sgemm(m: rows, n: cols, k: cols, a: dp.baseAddress!, lda: cols, b: hp.baseAddress!, ldb: cols,
                          c: op.baseAddress!, ldc: cols)
                }
            }
        }
        var total = 0.0
        for i in 0 ..< rows * cols { total += Double(d[i]) * Double(dh[i]) }
        return total
    }
}
