import Foundation
import Testing
import GreenPrune

/// documents.json: intervals and paired comparisons computed from per-document values, checked
/// against the closed forms they reduce to.
@Suite struct DocumentScoresTests {
    typealias Values = DocumentScores.MetricValues

    @Test func meanEstimateIsLmEvalsStandardError() throws {
        let xs = (0 ..< 200).map { Double($0 % 3 == 0 ? 1 : 0) }
        let e = try #require(Values(aggregation: "mean", values: xs).estimate())
        let se = Metrics.standardErrorOfMean(xs)
        #expect(e.value == Metrics.mean(xs))
        #expect(abs(try #require(e.interval).halfWidth - Uncertainty.z95 * se) < 1e-12)
    }

    @Test func weightedPerplexityAndBitsPerByte() throws {
        let ll = (0 ..< 100).map { -300.0 - Double($0 % 7) * 10 }, w = (0 ..< 100).map { 100.0 + Double($0 % 5) }
        let items = zip(ll, w).map { (loglikelihood: $0, weight: $1) }
        let p = try #require(Values(aggregation: "weighted_perplexity", loglikelihoods: ll, weights: w).estimate())
        #expect(abs(p.value - Metrics.weightedPerplexity(items)) < 1e-12)
        #expect(try #require(p.interval).contains(p.value))
        let b = try #require(Values(aggregation: "bits_per_byte", loglikelihoods: ll, weights: w).estimate())
        #expect(abs(b.value - Metrics.bitsPerByte(items)) < 1e-12)
        // Same resamples: the bits-per-byte interval is the log₂ of the byte-perplexity interval.
        #expect(abs(try #require(b.interval).low - log2(try #require(p.interval).low)) < 1e-12)
    }

    @Test func spearmanEstimate() throws {
        let x = (0 ..< 60).map { Double($0) + Double($0 % 4) * 3 }, y = (0 ..< 60).map(Double.init)
        let e = try #require(Values(aggregation: "spearman", x: x, y: y).estimate())
        #expect(abs(e.value - 100 * Metrics.spearman(x, y)) < 1e-12)
        let i = try #require(e.interval)
        #expect(i.low <= e.value && e.value <= 100)
    }

    @Test func pairedMeanComparison() throws {
        let base = (0 ..< 300).map { Double($0 % 2) }
        var variant = base
        for i in stride(from: 0, to: 300, by: 10) { variant[i] = 1 - variant[i] }  // 30 flips
        let c = try #require(Values(aggregation: "mean", values: variant).compare(to: Values(aggregation: "mean", values: base)))
        let d = Uncertainty.pairedDifference(variant: variant, baseline: base)
        #expect(c.kind == "difference" && c.estimate.value == d.mean && c.estimate.interval == d.interval)
        #expect(c.documents == 300)
    }

    @Test func perplexityRatioIsResolvedAgainstOne() throws {
        let w = [Double](repeating: 128, count: 80)
        let base = (0 ..< 80).map { -400.0 - Double($0 % 9) * 20 }
        let worse = base.map { $0 - 12.8 }  // 0.1 nats per token everywhere
        let c = try #require(Values(aggregation: "weighted_perplexity", loglikelihoods: worse, weights: w)
            .compare(to: Values(aggregation: "weighted_perplexity", loglikelihoods: base, weights: w)))
        #expect(c.kind == "ratio")
        #expect(abs(c.estimate.value - exp(0.1)) < 1e-12)
        #expect(c.isResolved)
        let same = try #require(Values(aggregation: "weighted_perplexity", loglikelihoods: base, weights: w)
            .compare(to: Values(aggregation: "weighted_perplexity", loglikelihoods: base, weights: w)))
        #expect(same.estimate.value == 1 && !same.isResolved)
    }

    @Test func alignsOnSharedDocuments() throws {
        let v = DocumentScores.TaskScores(documents: [0, 1, 2, 3], metrics: ["acc": Values(aggregation: "mean", values: [1, 0, 1, 1])])
        let b = DocumentScores.TaskScores(documents: [3, 2, 1, 9], metrics: ["acc": Values(aggregation: "mean", values: [0, 0, 1, 1])])
        let (av, ab) = try #require(v.aligned("acc", with: b))
        #expect(av.values == [0, 1, 1])  // documents 1, 2, 3 in the variant's order
        #expect(ab.values == [1, 0, 0])
        #expect(v.aligned("acc_norm", with: b) == nil)
    }

    @Test func malformedValuesHaveNoCount() {
        #expect(Values(aggregation: "weighted_perplexity", loglikelihoods: [1, 2], weights: [1]).count == nil)
        #expect(Values(aggregation: "weighted_perplexity", loglikelihoods: [1, 2]).count == nil)
        #expect(Values(aggregation: "mean", values: [1, 2]).estimate() != nil)
        #expect(Values(aggregation: "unknown", values: [1, 2]).estimate() == nil)
    }

    @Test func fileRoundTripAndBadFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("docscores-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try DocumentScores.read(from: dir) == nil)
        let s = DocumentScores(tasks: ["piqa": .init(documents: [4, 5], metrics: ["acc": Values(aggregation: "mean", values: [1, 0])])])
        try s.write(to: dir)
        #expect(try DocumentScores.read(from: dir) == s)
        try Data("{\"version\": 1, \"tasks\": 3}".utf8).write(to: dir.appendingPathComponent(DocumentScores.fileName))
        #expect(throws: InputError.self) { try DocumentScores.read(from: dir) }
    }
}
