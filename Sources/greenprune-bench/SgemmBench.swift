import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune-bench sgemm [--shape MxNxK …]`: OpenBLAS sgemm GFLOP/s on this machine, the
/// rate `model` sets the forward pass against.
struct SgemmBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sgemm",
        abstract: "Measure OpenBLAS sgemm GFLOP/s on given shapes (C = A·Bᵀ, float32).")

    @Option(parsing: .singleValue, help: "M x N x K, e.g. 4096x576x576 (repeatable; default 1024x1024x1024).")
    var shape: [String] = []

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
        for s in shape where Self.parse(s) == nil { throw ValidationError("--shape '\(s)' is not MxNxK with positive sizes") }
    }

    static func parse(_ s: String) -> (Int, Int, Int)? {
        let parts = s.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ $0 > 0 && $0 <= 1 << 16 }) else { return nil }
        return (parts[0], parts[1], parts[2])
    }

    func run() throws {
        BLAS.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        print("OpenBLAS cblas_sgemm, float32, \(BLAS.threads) threads")
        for s in shape.isEmpty ? ["1024x1024x1024"] : shape {
            guard let (m, n, k) = Self.parse(s) else { continue }
            let (flops, seconds, cpu) = Self.rate(m: m, n: n, k: k)
            print("  " + s.padding(toLength: 20, withPad: " ", startingAt: 0)
                  + String(format: " %7.1f GFLOP/s (%.1f per CPU-second)", flops / seconds / 1e9, flops / cpu / 1e9))
        }
    }

    /// (FLOPs, seconds, CPU seconds) of repeated C = A·Bᵀ sgemm calls on (m, k)·(n, k), ≥ 0.3 s
    /// after a warm-up.
    static func rate(m: Int, n: Int, k: Int) -> (Double, Double, Double) {
        let a = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: n * k)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<(m * k) { a[i] = Float(i % 7) * 0.01 }
        for i in 0..<(n * k) { b[i] = Float(i % 5) * 0.01 }
        matmulLinear(c, a, b, m: m, n: n, k: k)
        var calls = 0
        let t0 = Harness.now(), c0 = Harness.processCPUSeconds()
        var t = 0.0
        repeat {
            matmulLinear(c, a, b, m: m, n: n, k: k)
            calls += 1
            t = Harness.now() - t0
        } while t < 0.3
        return (2 * Double(m) * Double(n) * Double(k) * Double(calls), t, Harness.processCPUSeconds() - c0)
    }
}
