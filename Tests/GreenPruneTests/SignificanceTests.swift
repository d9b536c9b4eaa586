import Foundation
import Testing
import GreenPrune

/// The report's intervals and change marks, from per-document values.
@Suite struct SignificanceTests {
    typealias Values = DocumentScores.MetricValues

    static func scores(_ tasks: [String: [Double]], documents: [Int]? = nil) -> DocumentScores {
        DocumentScores(tasks: tasks.mapValues { v in
            .init(documents: documents ?? Array(v.indices), metrics: ["acc": Values(aggregation: "mean", values: v)])
        })
    }

    @Test func averageOfTasksAndItsPairedChange() throws {
        let a = (0 ..< 100).map { Double($0 % 2) }, b = (0 ..< 200).map { Double($0 % 4 == 0 ? 1 : 0) }
        let base = Self.scores(["t1": a, "t2": b])
        var a2 = a; for i in 0 ..< 10 { a2[2 * i] = 1 }  // ten more right in t1
        let variant = Self.scores(["t1": a2, "t2": b])
        let tasks = [(task: "t1", metric: "acc"), (task: "t2", metric: "acc")]

        let avg = try #require(Significance.average(base, of: tasks))
        let se = (pow(Metrics.standardErrorOfMean(a), 2) + pow(Metrics.standardErrorOfMean(b), 2)).squareRoot() / 2
        #expect(abs(avg.value - 0.375) < 1e-15)
        #expect(abs(try #require(avg.interval).halfWidth - Uncertainty.z95 * se) < 1e-12)

        let c = try #require(Significance.averageComparison(variant: variant, baseline: base, of: tasks))
        let d1 = Uncertainty.pairedDifference(variant: a2, baseline: a)
        #expect(abs(c.estimate.value - 0.05) < 1e-15)  // (0.1 + 0) / 2
        // t2 is unchanged (standard error 0): the average's is t1's halved.
        #expect(abs(try #require(c.estimate.interval).halfWidth - Uncertainty.z95 * d1.standardError / 2) < 1e-12)
        #expect(c.isResolved)
        #expect(Significance.average(base, of: [(task: "t3", metric: "acc")]) == nil)
    }

    @Test func comparisonUsesSharedDocumentsOnly() throws {
        let base = Self.scores(["t": [1, 1, 0, 0]], documents: [0, 1, 2, 3])
        let variant = Self.scores(["t": [0, 1]], documents: [1, 2])
        let c = try #require(Significance.comparison(variant: variant, baseline: base, task: "t", metric: "acc"))
        // Documents 1 and 2: variant 0, 1 against baseline 1, 0: differences −1 and +1.
        #expect(c.documents == 2 && c.estimate.value == 0 && !c.isResolved)
    }

    @Test func texts() {
        let sym = Estimate(0.5, Interval(low: 0.45, high: 0.55))
        #expect(Significance.text(sym, scale: 100, format: "%.1f") == "50.0 ± 5.0")
        let skew = Estimate(40, Interval(low: 38, high: 45))
        #expect(Significance.text(skew, format: "%.2f") == "40.00 [38.00, 45.00]")
        #expect(Significance.text(Estimate(3, nil), format: "%.2f") == "3.00")
        let small = MetricComparison(kind: "difference", estimate: Estimate(0.01, Interval(low: -0.02, high: 0.04)), documents: 10)
        #expect(Significance.changeText(small, scale: 100, format: "%.1f") == "~+1.0 ± 3.0")
        let big = MetricComparison(kind: "difference", estimate: Estimate(-0.1, Interval(low: -0.13, high: -0.07)), documents: 10)
        #expect(Significance.changeText(big, scale: 100, format: "%.1f") == "-10.0 ± 3.0")
        let ratio = MetricComparison(kind: "ratio", estimate: Estimate(1.25, Interval(low: 1.2, high: 1.31)), documents: 10)
        #expect(Significance.changeText(ratio, format: "%.2f") == "×1.250 [1.200, 1.310]")
    }
}
