import Foundation
import Testing
import GreenPrune

/// scripts/compare-reports.py: two runs of one sweep must agree on the direction of every
/// change that either marks resolved.
@Suite struct CompareReportsScriptTests {
    /// A report.json with one model: a baseline and variant `p` whose accuracy change,
    /// perplexity ratio and speed percentage are given.
    static func report(acc: Double, accResolved: Int, ratio: Double, speed: Double, speedResolved: Int) -> String {
        """
        {"models": [{"model": "m", "columns": [], "labels": [], "notes": [], "summary": [], "rows": [
          {"variant": "baseline", "piqa.acc": 60, "tokens_per_second_pct": 100},
          {"variant": "p", "piqa.acc": \(60 + acc), "piqa.acc_change": \(acc), "piqa.acc_resolved": \(accResolved),
           "wikitext2_chunked.perplexity": 80, "wikitext2_chunked.perplexity_change": \(ratio),
           "wikitext2_chunked.perplexity_resolved": 1,
           "tokens_per_second_pct": \(speed), "tokens_per_second_pct_resolved": \(speedResolved)}]}]}
        """
    }

    static func compare(_ a: String, _ b: String) throws -> (Int32, String) {
        let dir = try SweepFixtures.tempDir("compare-reports")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ua = dir.appendingPathComponent("a.json"), ub = dir.appendingPathComponent("b.json")
        try a.write(to: ua, atomically: true, encoding: .utf8)
        try b.write(to: ub, atomically: true, encoding: .utf8)
        let script = SweepFixtures.packageRoot.appendingPathComponent("scripts/compare-reports.py").path
        let (code, out, err) = try SweepFixtures.run(["/usr/bin/env", "python3", script, ua.path, ub.path], cwd: dir)
        return (code, out + err)
    }

    @Test func sameDirectionsAgree() throws {
        // Speed resolved in A only, with the same direction in B: no contradiction.
        let (code, out) = try Self.compare(Self.report(acc: -5, accResolved: 1, ratio: 1.3, speed: 120, speedResolved: 1),
                                           Self.report(acc: -3, accResolved: 1, ratio: 1.2, speed: 104, speedResolved: 0))
        #expect(code == 0, "\(out)")
        #expect(out.contains("2 figures resolved in both runs; 0 with a direction that differs"))
    }

    @Test(arguments: [(-5.0, 1.3, 120.0), (5.0, 1.3, 120.0), (-5.0, 0.9, 120.0), (-5.0, 1.3, 95.0)])
    func aFlippedDirectionFails(_ b: (acc: Double, ratio: Double, speed: Double)) throws {
        let a = Self.report(acc: -5, accResolved: 1, ratio: 1.3, speed: 120, speedResolved: 1)
        let (code, out) = try Self.compare(a, Self.report(acc: b.acc, accResolved: 0, ratio: b.ratio, speed: b.speed, speedResolved: 0))
        let flipped = b.acc > 0 || b.ratio < 1 || b.speed < 100
        #expect(code == (flipped ? 1 : 0), "\(out)")
        #expect(out.contains("CONTRADICTS") == flipped)
    }
}
