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

/// The report with per-document values: every task figure carries its interval, changes are
/// paired and marked when unresolved, and each model opens with its conclusions.
@Suite struct ReportSignificanceTests {
    typealias Values = DocumentScores.MetricValues

    /// piqa: 200 documents, baseline 70% right; p20 loses 40 documents (resolved), q8 flips 2
    /// right and 2 wrong (unresolved). wikitext2_chunked: 50 windows of 100 tokens.
    static func write(_ dir: URL) throws {
        let piqaBase = (0 ..< 200).map { $0 % 10 < 7 ? 1.0 : 0.0 }
        var piqaP20 = piqaBase
        var lost = 0
        for i in piqaP20.indices where piqaP20[i] == 1 && lost < 40 { piqaP20[i] = 0; lost += 1 }
        var piqaQ8 = piqaBase
        piqaQ8[0] = 0; piqaQ8[1] = 0; piqaQ8[7] = 1; piqaQ8[8] = 1
        let w = [Double](repeating: 100, count: 50)
        let llBase = (0 ..< 50).map { -300.0 - Double($0 % 5) * 5 }
        let runs: [(String, [Double], [Double])] = [
            ("m__baseline", piqaBase, llBase),
            ("m__p20", piqaP20, llBase.map { $0 - 22.3 }),
            ("m__q8", piqaQ8, llBase.enumerated().map { $1 + ($0 % 2 == 0 ? 0.5 : -0.5) }),
        ]
        for (id, piqa, ll) in runs {
            let tasks: [String: DocumentScores.TaskScores] = [
                "piqa": .init(documents: Array(0 ..< 200), metrics: ["acc": Values(aggregation: "mean", values: piqa)]),
                "hellaswag": .init(documents: Array(0 ..< 200), metrics: ["acc_norm": Values(aggregation: "mean", values: piqaBase)]),
                "wikitext2_chunked": .init(documents: Array(0 ..< 50), metrics: ["perplexity": Values(aggregation: "weighted_perplexity",
                                                                                                      loglikelihoods: ll, weights: w)]),
            ]
            try DocumentScores(tasks: tasks).write(to: dir.appendingPathComponent("runs/\(id)"))
        }
    }

    func cell(_ t: ReportTable, _ variant: String, _ key: String) throws -> ReportCell {
        let c = try #require(t.column(key)), row = try #require(t.rows.first { $0[0].text == variant })
        return row[c]
    }

    @Test func intervalsPairedChangesAndConclusions() throws {
        let dir = try ReportFixture.make()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.write(dir)
        let t = Tables.build(try ReportData.load(dir))[0]

        let base = try cell(t, "baseline", "piqa.acc")
        let se = Metrics.standardErrorOfMean((0 ..< 200).map { $0 % 10 < 7 ? 1.0 : 0.0 })
        #expect(abs(try #require(base.interval).halfWidth - 100 * Uncertainty.z95 * se) < 1e-9)
        #expect(base.text.hasPrefix("70.0 ± "))

        let p20 = try cell(t, "p20", "piqa.acc")
        #expect(p20.resolved == true && p20.better == false)
        #expect(abs(try #require(p20.change) + 20) < 1e-9)  // 40 of 200 documents
        #expect(p20.text.contains("(-20.0 ± "), "\(p20.text)")

        let q8 = try cell(t, "q8", "piqa.acc")
        #expect(q8.resolved == false && q8.better == nil)
        #expect(q8.text.contains("(~+0.0 ± "), "\(q8.text)")

        let ppl = try cell(t, "p20", "wikitext2_chunked.perplexity")
        #expect(ppl.resolved == true && ppl.text.contains("×1.250"), "\(ppl.text)")  // exp(22.3/100)
        #expect(try cell(t, "q8", "wikitext2_chunked.perplexity").resolved == false)

        let avg = try cell(t, "p20", "avg_acc")
        #expect(abs(try #require(avg.change) + 10) < 1e-9 && avg.resolved == true)  // (−20 + 0) / 2

        #expect(t.notes.contains(Significance.rule))
        #expect(t.summary.count == 2)
        #expect(t.summary[0].hasPrefix("p20: 20.0% fewer parameters"), "\(t.summary)")
        #expect(t.summary[0].contains("average accuracy -10.0 ± "))
        #expect(t.summary[0].contains("wikitext2_chunked perplexity ×1.25 ["))
        #expect(t.summary[1].contains("(not resolved)"))

        let md = Tables.markdown([t])
        #expect(md.contains("- p20: 20.0% fewer parameters"))
        let csv = CSV.table(Tables.csv([t]))
        let row = try #require(csv.first { $0["variant"] == "p20" })
        #expect(row["piqa.acc_resolved"] == "1.0" && row["piqa.acc_change"].flatMap(Double.init).map { abs($0 + 20) < 1e-9 } == true)
        #expect(csv.first { $0["variant"] == "q8" }?["piqa.acc_resolved"] == "0.0")
        // A perplexity's change is the ratio, in the units of its interval (exp(22.3/100) here).
        let ratio = try #require(row["wikitext2_chunked.perplexity_change"].flatMap(Double.init))
        let low = try #require(row["wikitext2_chunked.perplexity_change_low"].flatMap(Double.init))
        let high = try #require(row["wikitext2_chunked.perplexity_change_high"].flatMap(Double.init))
        #expect(abs(ratio - 1.2498) < 1e-3 && low - 1e-9 <= ratio && ratio <= high + 1e-9)  // a constant shift: the bootstrap interval is a point
        #expect(Tables.html(t).contains("class=\"unresolved\""))
        #expect(Tables.json([t]).contains("\"summary\""))
    }
}

/// The Pareto front from resolved differences only, and error bars on the plots.
@Suite struct ResolvedParetoTests {
    typealias P = Plots.ParetoPoint

    @Test func noiseNeitherPushesOffNorPutsOnTheFront() {
        let i = { (v: Double, h: Double) in Interval(low: v - h, high: v + h) }
        let pts = [
            P(x: 1, y: 50, yInterval: i(50, 5)),   // 0: cheapest
            P(x: 2, y: 52, yInterval: i(52, 5)),   // 1: dearer, better only within the noise → off
            P(x: 3, y: 70, yInterval: i(70, 5)),   // 2: dearer and resolved better → on
            P(x: 1, y: 50, yInterval: i(50, 5)),   // 3: the same as 0 → both stay
            P(x: 0.5, y: 20, yInterval: i(20, 2)), // 4: cheapest of all, resolved worse → on
        ]
        #expect(Plots.resolvedParetoFront(pts) == [4, 0, 3, 2])
        // Without intervals the noisy point 1 would be on the front.
        #expect(Plots.paretoFront(pts.map { ($0.x, $0.y) }).count == 4)
        // Overlapping cost intervals are a tie: neither of two equally accurate points dominates.
        let tie = [P(x: 1.0, y: 60, xInterval: Interval(low: 0.9, high: 1.2), yInterval: i(60, 1)),
                   P(x: 1.1, y: 60, xInterval: Interval(low: 1.0, high: 1.3), yInterval: i(60, 1))]
        #expect(Plots.resolvedParetoFront(tie) == [0, 1])
        // Resolved on cost: the dearer one goes.
        let apart = [P(x: 1.0, y: 60, xInterval: Interval(low: 0.9, high: 1.05), yInterval: i(60, 1)),
                     P(x: 1.2, y: 60, xInterval: Interval(low: 1.1, high: 1.3), yInterval: i(60, 1))]
        #expect(Plots.resolvedParetoFront(apart) == [0])
    }

    @Test func plotsDrawErrorBars() throws {
        let dir = try ReportFixture.make()
        defer { try? FileManager.default.removeItem(at: dir) }
        try ReportSignificanceTests.write(dir)
        let data = try ReportData.load(dir)
        let t = Tables.build(data)[0]
        let acc = try #require(Plots.accuracyVsEnergy(t))
        // One vertical bar per variant with an average-accuracy interval (baseline, p20, q8).
        #expect(acc.components(separatedBy: "class=\"error-bar\"").count - 1 == 3)
        #expect(acc.contains("Pareto front (resolved)"))
        let ppl = try #require(Plots.perplexityVsParameters(t, data))
        #expect(ppl.components(separatedBy: "class=\"error-bar\"").count - 1 == 3)
    }
}
