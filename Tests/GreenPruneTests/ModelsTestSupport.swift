import Foundation
import Testing
import GreenPrune

/// Reference files and model directories for the forward-pass tests.
enum ModelsFixtures {
    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    /// A model directory under ~/.cache/greenprune; a clear error when absent.
    static func model(_ url: URL) throws -> URL {
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) else {
            throw Missing(description: "\(url.path) is missing: run scripts/fetch-models.sh first")
        }
        return url
    }

    static func json(_ name: String) throws -> [String: Any] {
        let url = Paths.referenceDirectory().appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path),
              let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Missing(description: "\(url.path) is missing or not JSON (set GREENPRUNE_REFERENCE)")
        }
        return obj
    }

    /// Raw little-endian float32 reference array.
    static func floats(_ name: String) throws -> [Float] {
        let url = Paths.referenceDirectory().appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw Missing(description: "\(url.path) is missing (set GREENPRUNE_REFERENCE)")
        }
        return data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
    }

    static func sentences(_ obj: [String: Any]) -> [[String: Any]] { obj["sentences"] as? [[String: Any]] ?? [] }
    static func ints(_ v: Any?) -> [Int] { (v as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue } ?? [] }
    static func floatList(_ v: Any?) -> [Float] { (v as? [Any])?.compactMap { ($0 as? NSNumber)?.floatValue } ?? [] }

    /// `score()`'s results with the layers in row bands and with one multi-threaded product per
    /// projection (`rowBands` off), AMX and bf16 dot products off either way so that
    /// half-precision and quantized products run on the calling thread on every CPU; each run's
    /// profile must show the row-band phase exactly when bands were asked for (and OpenBLAS is
    /// configured for more than one thread: other suites' single-threaded sections running
    /// meanwhile do not change that count as `BLAS.threads` reads it).
    static func inAndOutOfRowBands(_ model: LlamaModel, _ score: () throws -> [ScoreResult]) throws
        -> (banded: [ScoreResult], whole: [ScoreResult]) {
        let saved = model.kernelOptions
        defer { model.kernelOptions = saved; model.profile = nil }
        func run(_ bands: Bool) throws -> (results: [ScoreResult], phases: [String]) {
            var options = saved
            options.amx = false
            options.bf16Dot = false
            options.rowBands = bands
            model.kernelOptions = options
            let profile = ForwardProfile()
            model.profile = profile
            return (try score(), profile.order)
        }
        let banded = try run(true), whole = try run(false)
        if min(activeCores, BLAS.threads) > 1 { #expect(banded.phases.contains("row bands"), "\(banded.phases)") }
        #expect(!whole.phases.contains("row bands"), "\(whole.phases)")
        #expect(banded.results.count == whole.results.count)
        return (banded.results, whole.results)
    }

    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) { ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
        return ab / (aa.squareRoot() * bb.squareRoot())
    }

    /// The decoder under test: $GREENPRUNE_SMOLLM2 if set, else the default import.
    static var smollm2: URL {
        if let p = ProcessInfo.processInfo.environment["GREENPRUNE_SMOLLM2"], !p.isEmpty { return URL(fileURLWithPath: p) }
        return Paths.defaultDecoder
    }
}
