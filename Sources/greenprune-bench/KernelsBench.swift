import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune-bench kernels [--shape MxNxK …]`: the float-activation product paths of one
/// projection, as the model calls them (`LinearLayer.forward`, all cores), in GFLOP/s side by
/// side: float32 sgemm; INT8 per channel, INT4 groups of 64 and bf16 weights expanded to float32
/// tiles for sgemm; the same on the AVX-512 BF16 and (quantized) int16 dot-product kernels, and on AMX tiles, where the
/// CPU has them. The defaults are SmolLM2-135M's and all-MiniLM-L6-v2's projections at 512 tokens.
struct KernelsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Measure GFLOP/s of a projection on every float-activation kernel path (sgemm, bf16 dot products, AMX).")

    @Option(parsing: .singleValue, help: "M x N x K: M input rows, N outputs, K inputs (repeatable; default SmolLM2's and MiniLM's projections at 512 rows).")
    var shape: [String] = []

    @Option(help: "Seconds each path is timed for (after one warm-up call).")
    var seconds: Double = 0.3

    static let defaultShapes = ["512x576x576", "512x192x576", "512x1536x576", "512x576x1536", "512x49152x576",
                                "512x1536x384", "512x384x1536"]

    func validate() throws {
        for s in shape where SgemmBench.parse(s) == nil { throw ValidationError("--shape '\(s)' is not MxNxK with positive sizes") }
        guard seconds > 0, seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60], got \(seconds)") }
    }

    /// A path: its name, and the layer with its options set to take it.
    typealias Path = (name: String, layer: LinearLayer)

    func run() throws {
        print(String(format: "threads %d; AVX-512 BF16: %@ (VDPBF16PS multiply-adds per second ×%.2f of float32 FMA; on by default: %@); AMX: %@",
                     ProcessInfo.processInfo.activeProcessorCount,
                     (KernelOptions.bf16DotAvailable ? "yes" : "no") as NSString, KernelOptions.bf16DotSpeedup,
                     (KernelOptions.standard.bf16Dot ? "yes" : "no") as NSString,
                     (KernelOptions.amxAvailable ? "yes" : "no") as NSString))
        print(String(format: "int16 dot products: %@ on %@ (multiply-adds per second ×%.2f of float32 FMA; on by default: %@)",
                     (KernelOptions.int16DotAvailable ? "yes" : "no") as NSString, KernelOptions.int16DotISA.description as NSString,
                     KernelOptions.int16DotSpeedup,
                     (KernelOptions.standard.int16Dot ? "yes" : "no") as NSString))
        for s in shape.isEmpty ? Self.defaultShapes : shape {
            guard let (m, n, k) = SgemmBench.parse(s) else { continue }
            var g = SystemRandomNumberGenerator()
            let w = (0 ..< n * k).map { _ in Float.random(in: -0.1 ... 0.1, using: &g) }
            let x = (0 ..< m * k).map { _ in Float.random(in: -1 ... 1, using: &g) }
            var paths: [Path] = [("f32 sgemm", DenseLinear(weight: w, outFeatures: n, inFeatures: k))]
            var schemes = [("int8 channel", try QuantScheme(bits: 8, granularity: .channel, symmetric: true))]
            if k % 64 == 0 { schemes.append(("int4 group64", try QuantScheme(bits: 4, granularity: .group, groupSize: 64, symmetric: false))) }
            for (name, scheme) in schemes {
                let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: n, cols: k, name: name) }
                paths += try Self.variants(name) { try QuantizedLinear(t, bias: nil) }
            }
            paths += try Self.variants("bf16") { try w.withUnsafeBufferPointer { try HalfLinear(dtype: .bf16, rounding: $0.baseAddress!, outFeatures: n, inFeatures: k) } }
            print(s)
            let flops = 2 * Double(m) * Double(n) * Double(k)
            var out = [Float](repeating: 0, count: m * n)
            for p in paths {
                let rate = x.withUnsafeBufferPointer { xp in
                    out.withUnsafeMutableBufferPointer { op in
                        timed { p.layer.forward(xp.baseAddress!, rows: m, into: op.baseAddress!) }
                    }
                }
                print("  " + p.name.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%7.1f GFLOP/s", flops * rate / 1e9))
            }
        }
    }

    /// `make()`'s layer on each path this CPU has: sgemm over expanded tiles, bf16 dot products,
    /// int16 dot products and AMX tiles (quantized layers only).
    static func variants(_ name: String, make: () throws -> LinearLayer) rethrows -> [Path] {
        var out: [Path] = []
        let sgemm = try make()
        sgemm.adopt(KernelOptions(amx: false, bf16Dot: false, int16Dot: false))
        out.append(("\(name) sgemm", sgemm))
        if KernelOptions.bf16DotAvailable {
            let dot = try make()
            dot.adopt(KernelOptions(amx: false, bf16Dot: true, int16Dot: false))
            out.append(("\(name) avx512-bf16-dot", dot))
        }
        if KernelOptions.int16DotAvailable, name != "bf16" {
            let dot = try make()
            dot.adopt(KernelOptions(amx: false, bf16Dot: false, int16Dot: true))
            out.append(("\(name) int16-dot", dot))
        }
        if KernelOptions.amxAvailable, name != "bf16" {
            let amx = try make()
            amx.adopt(KernelOptions(amx: true, bf16Dot: false, int16Dot: false))
            out.append(("\(name) amx-bf16", amx))
        }
        return out
    }

    /// Calls per second of `body` over `seconds`, after one warm-up call.
    func timed(_ body: () -> Void) -> Double {
        body()
        var calls = 0
        let t0 = Harness.now()
        var t = 0.0
        repeat {
            body()
            calls += 1
            t = Harness.now() - t0
        } while t < seconds
        return Double(calls) / t
    }
}
