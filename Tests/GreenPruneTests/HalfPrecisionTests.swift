import Foundation
import Testing
import GreenPrune

/// bf16/f16 weights kept in half precision (`HalfLinear`, `HalfLinearLoader`, `--dtype`): the
/// conversions against IEEE 754's field layout and hand-rounded cases, the layer against the
/// float32 product of the same rounded weights, and SmolLM2 in bf16 against transformers' float32
/// reference and the float32 model's perplexity.
@Suite(.serialized) struct HalfPrecisionTests {
    /// The value of bf16 pattern `b` from its fields (1 sign, 8 exponent, 7 mantissa bits), in
    /// Double: subnormals m/2⁷·2⁻¹²⁶, normals (1 + m/2⁷)·2^(e−127), e = 255 inf or NaN.
    static func bf16Value(_ b: UInt16) -> Double {
        let sign: Double = b & 0x8000 != 0 ? -1 : 1, e = Int((b >> 7) & 0xFF), m = Double(b & 0x7F)
        if e == 0xFF { return m == 0 ? sign * .infinity : .nan }
        if e == 0 { return sign * m / 128 * pow(2, -126) }
        return sign * (1 + m / 128) * pow(2, Double(e - 127))
    }

    static func random(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var s = seed
        return (0 ..< n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return (Float(Int64(bitPattern: s >> 11) % 2_000_001) / 1_000_000 - 1) * scale
        }
    }

    /// Every one of the 65,536 bf16 patterns widens to the float32 its fields define (NaN to a
    /// NaN), through the scalar conversion and the layer's row expansion (the C kernel).
    @Test func everyBF16PatternWidensExactly() throws {
        let patterns = (0 ..< 65536).map { UInt16($0) }
        let layer = try patterns.withUnsafeBytes {
            try HalfLinear(dtype: .bf16, bytes: $0, mapping: nil, outFeatures: 256, inFeatures: 256)
        }
        var expanded = [Float](repeating: 0, count: 65536)
        expanded.withUnsafeMutableBufferPointer { layer.expand(rows: 0 ..< 256, into: $0.baseAddress!) }
        var subnormals = 0
        for b in patterns {
            let want = Self.bf16Value(b), scalar = bf16ToFloat(b), bulk = expanded[Int(b)]
            if want.isNaN {
                #expect(scalar.isNaN && bulk.isNaN, "pattern \(b)")
                continue
            }
            #expect(Double(scalar) == want && Double(bulk) == want, "pattern \(String(b, radix: 16)): \(scalar) \(bulk) vs \(want)")
            #expect(scalar.sign == (b & 0x8000 != 0 ? .minus : .plus))
            if scalar.isSubnormal { subnormals += 1 }
            // Widening and rounding back is the identity on every non-NaN pattern.
            #expect(floatToBF16(scalar) == b)
        }
        #expect(subnormals == 2 * 127)
    }

    /// float32 → bf16 rounds to nearest, ties to even (cases worked by hand from the bits).
    @Test func floatToBF16RoundsToNearestEven() {
        let cases: [(UInt32, UInt16)] = [
            (0x3F80_0000, 0x3F80),   // 1.0 exactly
            (0x3F80_7FFF, 0x3F80),   // just under half an ulp: down
            (0x3F80_8000, 0x3F80),   // a tie, 0x3F80 even: down
            (0x3F80_8001, 0x3F81),   // just over half: up
            (0x3F81_8000, 0x3F82),   // a tie, 0x3F82 even: up
            (0xBF81_8000, 0xBF82),   // the same below zero
            (0x7F7F_7FFF, 0x7F7F),   // largest bf16 stays
            (0x7F7F_FFFF, 0x7F80),   // float32's largest rounds past bf16's to inf
            (0x7F80_0000, 0x7F80), (0xFF80_0000, 0xFF80),   // ±inf
            (0x8000_0000, 0x8000),   // −0
            (0x0000_0001, 0x0000),   // the smallest subnormal float: under half of bf16's
            (0x0000_8000, 0x0000),   // a tie at zero, 0 even
            (0x0000_8001, 0x0001),   // over half: bf16's smallest subnormal
            (0x0001_8000, 0x0002),   // a tie, 2 even: up
            (0x007F_FFFF, 0x0080),   // the largest subnormal float rounds up to the smallest normal
        ]
        for (bits, want) in cases {
            #expect(floatToBF16(Float(bitPattern: bits)) == want, "\(String(bits, radix: 16))")
        }
        // NaNs stay NaN, even one whose payload sits only in the low 16 bits.
        for bits: UInt32 in [0x7F80_0001, 0x7FC0_0000, 0xFFFF_FFFF] {
            let b = floatToBF16(Float(bitPattern: bits))
            #expect(b & 0x7F80 == 0x7F80 && b & 0x7F != 0, "\(String(bits, radix: 16)) → \(String(b, radix: 16))")
        }
    }

    /// float32 → IEEE half rounds to nearest even too (65504 is the largest half; ulp 32 there).
    @Test func floatToHalfRoundsToNearestEven() {
        #expect(floatToHalf(65504) == 0x7BFF)
        #expect(floatToHalf(65519) == 0x7BFF)   // under half an ulp past the largest
        #expect(floatToHalf(65520) == 0x7C00)   // a tie past the largest: inf
        #expect(floatToHalf(0x1p-24) == 0x0001) // the smallest subnormal half
        #expect(floatToHalf(0x1p-25) == 0x0000) // a tie at zero: 0
        #expect(floatToHalf(0x1.8p-24) == 0x0002) // a tie between 1 and 2 subnormal steps: even
        #expect(halfToFloat(0x0001) == 0x1p-24 && halfToFloat(0x3C00) == 1 && halfToFloat(0xFC00) == -.infinity)
    }

    /// The layer's products equal DenseLinear's on the same rounded weights: whole, in bands,
    /// added in place, with a bias, over several expansion tiles; and its backward (dx, dW, db).
    @Test(arguments: [DType.bf16, .f16]) func layerEqualsFloat32OfRoundedWeights(_ dtype: DType) throws {
        let m = 37, k = 96, n = 200
        let w = Self.random(n * k, seed: 1), x = Self.random(m * k, seed: 2), bias = Self.random(n, seed: 3)
        let rounded = w.map { dtype == .bf16 ? bf16ToFloat(floatToBF16($0)) : halfToFloat(floatToHalf($0)) }
        #expect(rounded != w)
        let half = try w.withUnsafeBufferPointer {
            try HalfLinear(dtype: dtype, rounding: $0.baseAddress!, bias: FloatStorage(bias), outFeatures: n, inFeatures: k)
        }
        half.options.tileElements = 16 * k   // 13 tiles of 16 rows
        // Widened to float32 tiles: the AVX-512 BF16 kernel (on by default where it is fast) also
        // rounds the activations, and bf16DotEqualsFloat32OfRoundedOperands checks it.
        half.options.bf16Dot = false
        let dense = DenseLinear(weight: rounded, bias: bias, outFeatures: n, inFeatures: k)
        #expect(half.residentBytes == 2 * n * k + 4 * n)

        func run(_ f: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void, count: Int, start: [Float]? = nil) -> [Float] {
            var out = start ?? [Float](repeating: 0, count: count)
            x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { f(xp.baseAddress!, $0.baseAddress!) } }
            return out
        }
        func close(_ a: [Float], _ b: [Float], _ what: String) {
            let scale = b.map(abs).max() ?? 1
            #expect(ModelsFixtures.maxAbsDiff(a, b) <= 1e-6 * scale, "\(dtype) \(what): \(ModelsFixtures.maxAbsDiff(a, b)) of \(scale)")
        }
        close(run({ half.forward($0, rows: m, into: $1) }, count: m * n), run({ dense.forward($0, rows: m, into: $1) }, count: m * n), "forward")
        let band = 37 ..< 161
        close(run({ half.forward($0, rows: m, outputs: band, into: $1, ldo: band.count + 3) }, count: m * (band.count + 3)),
              run({ dense.forward($0, rows: m, outputs: band, into: $1, ldo: band.count + 3) }, count: m * (band.count + 3)), "band")
        let start = Self.random(m * n, seed: 4)
        var added = false
        let sum = run({ added = half.forward($0, rows: m, addingInto: $1) }, count: m * n, start: start)
        #expect(added)
        close(sum, zip(start, run({ dense.forward($0, rows: m, into: $1) }, count: m * n)).map { $0 + $1 }, "residual add")

        // On the calling thread (the row-band decoder's workers): whole, a band at a stride,
        // added in place, each with the bias, against the dense layer's multi-threaded products.
        #expect(half.computesOnCallingThread && dense.computesOnCallingThread)
        close(run({ half.forward(onCallingThread: $0, rows: m, into: $1) }, count: m * n),
              run({ dense.forward($0, rows: m, into: $1) }, count: m * n), "forward on the calling thread")
        close(run({ half.forward(onCallingThread: $0, rows: m, outputs: band, into: $1, ldo: band.count + 3, accumulate: false) },
                  count: m * (band.count + 3)),
              run({ dense.forward($0, rows: m, outputs: band, into: $1, ldo: band.count + 3) }, count: m * (band.count + 3)),
              "band on the calling thread")
        close(run({ half.forward(onCallingThread: $0, rows: m, into: $1, accumulate: true) }, count: m * n, start: start),
              zip(start, run({ dense.forward($0, rows: m, into: $1) }, count: m * n)).map { $0 + $1 }, "residual add on the calling thread")
        close(run({ dense.forward(onCallingThread: $0, rows: m, into: $1, accumulate: true) }, count: m * n, start: start),
              zip(start, run({ dense.forward($0, rows: m, into: $1) }, count: m * n)).map { $0 + $1 }, "dense residual add on the calling thread")

        // Backward: dx += dy·W, dW += dyᵀ·x, db += Σ dy, against the dense layer's.
        let dy = Self.random(m * n, seed: 5), dx0 = Self.random(m * k, seed: 6)
        let gh = try half.attachGradients(), gd = try dense.attachGradients()
        var dxh = dx0, dxd = dx0
        for (layer, dxBuf) in [(half as any LinearLayer, 0), (dense as any LinearLayer, 1)] {
            try x.withUnsafeBufferPointer { xp in
                try dy.withUnsafeBufferPointer { dyp in
                    if dxBuf == 0 {
                        try dxh.withUnsafeMutableBufferPointer { try layer.backward(input: xp.baseAddress!, outputGradient: dyp.baseAddress!, rows: m, inputGradient: $0.baseAddress!) }
                    } else {
                        try dxd.withUnsafeMutableBufferPointer { try layer.backward(input: xp.baseAddress!, outputGradient: dyp.baseAddress!, rows: m, inputGradient: $0.baseAddress!) }
                    }
                }
            }
        }
        close(dxh, dxd, "dx")
        close(gh.weight.array, gd.weight.array, "dW")
        close(gh.bias?.array ?? [], gd.bias?.array ?? [], "db")
        half.detachGradients()
    }

    /// The AVX-512 BF16 path (`bf16Dot`) equals the float32 product of the bf16 weights and the
    /// bf16-rounded activations (each bf16 product is exact in float32; only the order of the sums
    /// differs): whole, in bands at a stride, added in place, from one packed input shared by two
    /// layers, at widths that are not multiples of the kernel's blocks.
    @Test(arguments: [96, 90]) func bf16DotEqualsFloat32OfRoundedOperands(_ k: Int) throws {
        let m = 37, n = 200
        let w = Self.random(n * k, seed: 11), x = Self.random(m * k, seed: 12), bias = Self.random(n, seed: 13)
        let roundedW = w.map { bf16ToFloat(floatToBF16($0)) }, roundedX = x.map { bf16ToFloat(floatToBF16($0)) }
        let half = try w.withUnsafeBufferPointer { try HalfLinear(dtype: .bf16, rounding: $0.baseAddress!, bias: FloatStorage(bias), outFeatures: n, inFeatures: k) }
        let other = try w.withUnsafeBufferPointer { try HalfLinear(dtype: .bf16, rounding: $0.baseAddress!, outFeatures: n, inFeatures: k) }
        for l in [half, other] { l.options.bf16Dot = true; l.options.tileElements = 64 * k }   // several 64-row tiles
        #expect(half.usesBF16Dot(rows: m) == KernelOptions.bf16DotAvailable)
        #expect(half.sharesPackedInput(with: other, rows: m) == KernelOptions.bf16DotAvailable)
        // On a CPU without AVX-512 BF16 the layer takes the sgemm path: x itself, not rounded.
        let reference = DenseLinear(weight: roundedW, bias: bias, outFeatures: n, inFeatures: k)
        let xs = KernelOptions.bf16DotAvailable ? roundedX : x
        var want = [Float](repeating: 0, count: m * n), got = want
        xs.withUnsafeBufferPointer { xp in want.withUnsafeMutableBufferPointer { reference.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
        x.withUnsafeBufferPointer { xp in got.withUnsafeMutableBufferPointer { half.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
        let scale = want.map(abs).max() ?? 1
        #expect(ModelsFixtures.maxAbsDiff(got, want) <= 1e-5 * scale, "forward: \(ModelsFixtures.maxAbsDiff(got, want))")
        // Added in place.
        var sum = Self.random(m * n, seed: 14)
        let start = sum
        _ = x.withUnsafeBufferPointer { xp in sum.withUnsafeMutableBufferPointer { half.forward(xp.baseAddress!, rows: m, addingInto: $0.baseAddress!) } }
        #expect(ModelsFixtures.maxAbsDiff(sum, zip(start, want).map { $0 + $1 }) <= 1e-5 * scale)
        // A band at a stride, from an input packed once and read by the other layer too.
        let band = 37 ..< 161, ldo = band.count + 5
        var banded = [Float](repeating: 0, count: m * ldo)
        x.withUnsafeBufferPointer { xp in
            banded.withUnsafeMutableBufferPointer { out in
                if let packed = half.packInput(xp.baseAddress!, rows: m) {
                    other.forward(packed: packed, outputs: band, into: out.baseAddress!, ldo: ldo)
                } else {
                    other.forward(xp.baseAddress!, rows: m, outputs: band, into: out.baseAddress!, ldo: ldo)
                }
            }
        }
        for i in 0 ..< m {
            let row = Array(banded[i * ldo ..< i * ldo + band.count])
            let expected = (0 ..< band.count).map { want[i * n + band.lowerBound + $0] - bias[band.lowerBound + $0] }
            #expect(ModelsFixtures.maxAbsDiff(row, expected) <= 1e-5 * scale, "band row \(i)")
        }
    }

    /// A bf16 safetensors file loads mapped (no copy) when `--dtype auto` keeps it, rounded from
    /// float32 when `bf16` asks for it, and as float32 DenseLinear otherwise; the table read row
    /// by row returns the rounded rows.
    @Test func loaderMapsOrRoundsAsAsked() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-half-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = Self.random(10 * 8, seed: 7)
        let url = dir.appendingPathComponent("model.safetensors")
        try SafeTensorsWriter.write([SafeTensorsEntry(name: "a.weight", floats: w, shape: [10, 8], as: .bf16),
                                     SafeTensorsEntry(name: "b.weight", floats: w, shape: [10, 8], as: .f32)], to: url)
        let reader = try SafeTensorsReader(url)
        let rounded = w.map { bf16ToFloat(floatToBF16($0)) }
        let mapped = try #require(try HalfLinearLoader(dtype: .auto).load(prefix: "a", checkpoint: reader)?.layer as? HalfLinear)
        #expect(mapped.isMapped && mapped.dtype == .bf16)
        #expect(try HalfLinearLoader(dtype: .auto).load(prefix: "b", checkpoint: reader) == nil)   // F32 stays F32
        #expect(try HalfLinearLoader(dtype: .f32).load(prefix: "a", checkpoint: reader) == nil)
        let owned = try #require(try HalfLinearLoader(dtype: .bf16).load(prefix: "b", checkpoint: reader)?.layer as? HalfLinear)
        #expect(!owned.isMapped)
        let f16 = try #require(try HalfLinearLoader(dtype: .f16).load(prefix: "a", checkpoint: reader)?.layer as? HalfLinear)
        #expect(f16.dtype == .f16)
        let ids: [Int32] = [9, 0, 3, 3]
        for layer in [mapped, owned] {
            var out = [Float](repeating: 0, count: 4 * 8)
            ids.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { layer.gather(i.baseAddress!, count: 4, into: $0.baseAddress!) } }
            #expect(out == ids.flatMap { rounded[Int($0) * 8 ..< Int($0) * 8 + 8] })
        }
        #expect(WeightDType.stored(in: reader) == .f32 || WeightDType.stored(in: reader) == .bf16)
        #expect(WeightDType.auto.resolve(.bf16) == .bf16 && WeightDType.auto.resolve(.f64) == .f32 && WeightDType.f16.resolve(.bf16) == .f16)
    }

    // MARK: - SmolLM2 in bf16

    /// Runs the built CLI with `args`: its exit status and stderr.
    static func greenprune(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = try CLIBinary.url()
        p.arguments = args
        let err = Pipe(), out = Pipe()
        p.standardError = err; p.standardOutput = out
        try p.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        _ = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, stderr)
    }

    /// SmolLM2 converted to a bf16 directory once for the tests below (`convert DIR --dtype bf16`'s
    /// library call).
    static let bf16Directory: Result<URL, Error> = Result {
        let source = try ModelsFixtures.model(ModelsFixtures.smollm2)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gp-smollm2-bf16-\(getpid())")
        try? FileManager.default.removeItem(at: out)
        try ModelDirectoryWriter.convert(source, to: out, dtype: .bf16)
        return out
    }

    @Test func convertedDirectoryIsBF16AndLoadsInHalfPrecision() throws {
        let dir = try Self.bf16Directory.get()
        let reader = try SafeTensorsReader(dir)
        #expect(reader.names.allSatisfy { reader.info($0)?.dtype == .bf16 })
        #expect(WeightDType.stored(in: reader) == .bf16)
        let config = try ConfigJSON.load(dir.appendingPathComponent("config.json"))
        #expect(config.model.dtype == "bfloat16" || config.model.torchDtype == "bfloat16")
        let f32Bytes = try SafeTensorsReader(ModelsFixtures.smollm2).bytesOnDisk
        #expect(abs(Double(reader.bytesOnDisk) / Double(f32Bytes) - 0.5) < 0.01)

        let model = try ModelLoader.loadLlama(dir, dtype: .auto)
        let w = model.weights
        let table = try #require(w.embeddingRows as? HalfLinear)
        #expect(table === w.lmHead && table.isMapped && w.embedTokens.count == 0)
        #expect(w.layers.allSatisfy { $0.linears.allSatisfy { ($0.layer as? HalfLinear)?.isMapped == true } })
        let f32 = try ModelLoader.loadLlama(ModelsFixtures.smollm2)
        func weightBytes(_ m: LlamaModel) -> Int {
            m.weights.layers.reduce(m.weights.lmHead.residentBytes) { $0 + $1.linears.reduce(0) { $0 + $1.layer.residentBytes } }
        }
        #expect(weightBytes(model) * 2 == weightBytes(f32))
    }

    /// `inspect` on the bf16 directory (--dtype auto, as evaluate loads it): every matrix (the
    /// tied table and the projections) is a view of the file, so the mapped bytes are the file's
    /// 2-D tensors' bytes and only the norms, widened to float32, are owned; `--dtype f32`
    /// widens every matrix into an owned float32 copy instead.
    @Test func inspectCountsMappedBF16WeightsAsMapped() throws {
        let dir = try Self.bf16Directory.get()
        let reader = try SafeTensorsReader(dir)
        var matrixBytes = 0, vectorElements = 0
        for name in reader.names {
            let info = try #require(reader.info(name))
            if info.shape.count == 2 { matrixBytes += info.fileRange.count } else { vectorElements += info.elementCount }
        }
        func inspect(_ extra: [String]) throws -> [String: Any] {
            let p = Process()
            p.executableURL = try CLIBinary.url()
            p.arguments = ["inspect", dir.path, "--json"] + extra
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            return try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        for extra in [[], ["--dtype", "auto"], ["--dtype", "bf16"]] {
            let s = try inspect(extra)
            let mapped = try #require(s["mapped_weight_bytes"] as? Int), total = try #require(s["weight_bytes_in_memory"] as? Int)
            #expect(mapped == matrixBytes, "\(extra)")
            #expect(total - mapped == 4 * vectorElements, "\(extra)")
        }
        let widened = try inspect(["--dtype", "f32"])
        #expect(widened["mapped_weight_bytes"] as? Int == 0)
        #expect(widened["weight_bytes_in_memory"] as? Int == 2 * matrixBytes + 4 * vectorElements)
    }

    /// Each sentence's log-likelihood per token within 2e-2 of transformers' float32 reference
    /// (issue 24's bf16 tolerance), and no single token's log-probability off by more than 0.1
    /// (bf16 moves each weight by up to 2⁻⁹ of itself; the worst token moves by about 0.05).
    @Test func bf16TokenLogprobsMatchTheFloat32Reference() throws {
        let model = try ModelLoader.loadLlama(try Self.bf16Directory.get(), dtype: .auto)
        let (ids, expected, _) = try LlamaTests.reference()
        let scored = try model.score(ids.map { ScoreRequest(tokens: $0, scoreFrom: 1) })
        var worstToken: Float = 0, worstMean: Float = 0
        for i in ids.indices {
            #expect(scored[i].logprobs.count == expected[i].count)
            worstToken = max(worstToken, ModelsFixtures.maxAbsDiff(scored[i].logprobs, expected[i]))
            let n = Float(expected[i].count)
            worstMean = max(worstMean, abs(scored[i].logprobs.reduce(0, +) / n - expected[i].reduce(0, +) / n))
        }
        #expect(worstMean <= 2e-2, "max |Δ mean log-likelihood per token| = \(worstMean)")
        #expect(worstToken <= 0.1, "max |Δ token logprob| = \(worstToken)")
        #expect(worstToken > 0)   // the bf16 path really ran
    }

    /// The bf16 model's layers go in row bands when its products expand tiles for sgemm (bf16 dot
    /// products off): the profile shows the row-band phase, and the scores agree with one
    /// multi-threaded product per projection (`rowBands` off) within float32 rounding — the same
    /// bound and batches as `LlamaTests.rowBandsEqualWholeProducts` for float32 weights.
    @Test func bf16RowBandsEqualWholeProducts() throws {
        let model = try ModelLoader.loadLlama(try Self.bf16Directory.get(), dtype: .auto)
        var seed: UInt64 = 11
        func ids(_ n: Int) -> [Int] {
            (0 ..< n).map { _ in
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return Int((seed >> 33) % UInt64(model.vocabularySize))
            }
        }
        let requests = (0 ..< 4).map { _ in ScoreRequest(tokens: ids(200), scoreFrom: 1) }
        let groups = (0 ..< 2).map { _ in PrefixGroup(prefix: ids(120), continuations: [ids(30), ids(50)]) }
        let (banded, whole) = try ModelsFixtures.inAndOutOfRowBands(model) {
            try model.score(requests) + model.score(prefixGroups: groups).flatMap { $0 }
        }
        for (i, (a, b)) in zip(banded, whole).enumerated() {
            #expect(a.logprobs.count == b.logprobs.count)
            let d = ModelsFixtures.maxAbsDiff(a.logprobs, b.logprobs)
            #expect(d < 5e-5, "result \(i): max |Δ logprob| = \(d)")
            #expect(a.greedy == b.greedy, "result \(i)")
        }
    }

    /// A model with a bias on every projection, float32 and converted to bf16, in row bands
    /// against whole products: each band's worker writes the bias before q/k/v, gate and up and
    /// adds it with the o and down products into the residual stream.
    @Test(arguments: [WeightDType.f32, .bf16]) func biasedRowBandsEqualWholeProducts(_ dtype: WeightDType) throws {
        let root = temporaryDirectory("gp-biased-bands")
        defer { try? FileManager.default.removeItem(at: root) }
        let f32 = root.appendingPathComponent("f32"), bf16 = root.appendingPathComponent("bf16")
        try writeTinyLlama(f32, layerDims: [(4, 96), (4, 96), (2, 64)], seed: 5, biases: true)
        try ModelDirectoryWriter.convert(f32, to: bf16, dtype: .bf16)
        let model = try ModelLoader.loadLlama(dtype == .bf16 ? bf16 : f32, dtype: .auto)
        #expect(model.weights.layers.allSatisfy { $0.linears.allSatisfy { $0.layer.bias != nil } })
        #expect(model.weights.layers.allSatisfy {
            $0.linears.allSatisfy { $0.layer.weightStorage == (dtype == .bf16 ? .half(.bf16) : .float32) }
        })
        var g = SplitMix(state: 3)
        let requests = (0 ..< 4).map { _ in ScoreRequest(tokens: (0 ..< 60).map { _ in Int(g.next() % 50) }, scoreFrom: 1) }
        let (banded, whole) = try ModelsFixtures.inAndOutOfRowBands(model) { try model.score(requests) }
        for (i, (a, b)) in zip(banded, whole).enumerated() {
            #expect(a.logprobs.count == 59 && b.logprobs.count == 59)
            let d = ModelsFixtures.maxAbsDiff(a.logprobs, b.logprobs)
            #expect(d < 1e-5, "\(dtype) request \(i): max |Δ logprob| = \(d)")
        }
    }

    /// wikitext2_chunked perplexity of the bf16 model within 0.5% of the float32 model's.
    @Test func bf16PerplexityWithinHalfAPercent() throws {
        guard let data = sharedData() else { throw ModelsFixtures.Missing(description: "evaluation data missing: set GREENPRUNE_DATA") }
        func perplexity(_ dir: URL, _ dtype: WeightDType) throws -> Double {
            var options = EvaluationRunOptions(tasks: ["wikitext2_chunked"], dataDirectory: data)
            options.limit = 16
            options.dtype = dtype
            options.showProgress = false
            options.taskDirectory = try taskRegistry().specDirectory
            let r = try EvaluationRun.run(modelDirectory: dir, options: options)
            return try #require(r.reports.first?.values["perplexity"]?.value)
        }
        let f32 = try perplexity(ModelsFixtures.smollm2, .f32)
        let bf16 = try perplexity(try Self.bf16Directory.get(), .auto)
        #expect(abs(bf16 / f32 - 1) <= 0.005, "perplexity f32 \(f32), bf16 \(bf16)")
        #expect(bf16 != f32)
    }

    /// `convert DIR --dtype …` end to end: bf16 from float32, f32 back from bf16 (`auto` keeps
    /// bf16), and a bad --dtype is refused with a non-zero exit and a message naming it.
    @Test func convertCommandWritesTheAskedType() throws {
        let source = try Self.bf16Directory.get()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-half-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        func convert(_ args: [String]) throws -> (Int32, String) { try Self.greenprune(["convert"] + args + ["--quiet"]) }
        let kept = dir.appendingPathComponent("auto"), wide = dir.appendingPathComponent("f32")
        #expect(try convert([source.path, "--out", kept.path]).0 == 0)
        #expect(try SafeTensorsReader(kept).names.allSatisfy { (try? SafeTensorsReader(kept).info($0)?.dtype) == .bf16 })
        #expect(try convert([source.path, "--out", wide.path, "--dtype", "f32"]).0 == 0)
        let r = try SafeTensorsReader(wide)
        #expect(r.names.allSatisfy { r.info($0)?.dtype == .f32 })
        // Widening bf16 is exact: the float32 copy holds the same values.
        let a = try SafeTensorsReader(source).floats(LlamaNames.embedding), b = try r.floats(LlamaNames.embedding)
        #expect(a.array == b.array)
        let (status, stderr) = try convert([source.path, "--out", dir.appendingPathComponent("bad").path, "--dtype", "f8"])
        #expect(status != 0 && stderr.hasPrefix("Error: ") && stderr.contains("'f8'") && stderr.contains("--dtype"), "\(stderr)")
    }

    /// `prune` of the bf16 model writes bf16 (`auto`), or float32 when asked; the pruned bf16
    /// weights are the kept rows of the source's, bit for bit.
    @Test func pruneKeepsTheInputType() throws {
        let source = try Self.bf16Directory.get()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-half-prune-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        func prune(_ out: URL, _ extra: [String]) throws -> (Int32, String) {
            try Self.greenprune(["prune", source.path, "--out", out.path, "--ratio", "0.1", "--importance", "l2", "--no-energy", "--quiet"] + extra)
        }
        let kept = dir.appendingPathComponent("auto"), wide = dir.appendingPathComponent("f32")
        let (status, stderr) = try prune(kept, [])
        #expect(status == 0, "\(stderr)")
        let r = try SafeTensorsReader(kept)
        #expect(r.names.allSatisfy { r.info($0)?.dtype == .bf16 })
        let config = try ConfigJSON.load(kept.appendingPathComponent("config.json"))
        #expect(config.model.dtype == "bfloat16" || config.model.torchDtype == "bfloat16")
        // The final norm is not cut: its bf16 bits come through unchanged.
        let src = try SafeTensorsReader(source)
        #expect(try r.floats(LlamaNames.finalNorm).array == src.floats(LlamaNames.finalNorm).array)
        #expect(try prune(wide, ["--dtype", "f32"]).0 == 0)
        let w = try SafeTensorsReader(wide)
        #expect(w.names.allSatisfy { w.info($0)?.dtype == .f32 })
        #expect(try w.floats(LlamaNames.embedding).array == r.floats(LlamaNames.embedding).array)
    }
}
