import Foundation
import Testing
import GreenPrune

/// Standard errors, bootstrap intervals and paired differences against closed forms and lm-eval's
/// formulas on fixed samples.
@Suite struct UncertaintyTests {
    /// A fixed pseudo-random sample (not the bootstrap's generator stream: a different seed).
    static func sample(_ n: Int, seed: UInt64, scale: Double = 1) -> [Double] {
        var g = SplitMix64(seed: seed)
        // Sum of 12 uniforms − 6: approximately standard normal, deterministic.
        return (0 ..< n).map { _ in
            var s = 0.0
            for _ in 0 ..< 12 { s += Double(g.next() >> 11) / Double(1 << 53) }
            return (s - 6) * scale
        }
    }

    @Test func bernoulliStandardErrorIsLmEvalMeanStderr() {
        // lm-eval: sample_stddev (n − 1) / √n. For k ones in n: √(p(1 − p) / (n − 1)).
        let n = 300, k = 87
        let xs = (0 ..< n).map { $0 < k ? 1.0 : 0.0 }
        let p = Double(k) / Double(n)
        #expect(abs(Uncertainty.standardError(xs) - (p * (1 - p) / Double(n - 1)).squareRoot()) < 1e-15)
    }

    @Test func normalQuantile() {
        #expect(abs(Uncertainty.normalQuantile(0.975) - 1.959963984540054) < 1e-8)
        #expect(abs(Uncertainty.normalQuantile(0.5)) < 1e-12)
        #expect(abs(Uncertainty.normalQuantile(0.01) + 2.326347874040841) < 1e-8)
        #expect(abs(Uncertainty.normalQuantile(0.3) + Uncertainty.normalQuantile(0.7)) < 1e-12)
    }

    @Test func quantileIsNumpyLinear() {
        let xs = [1.0, 2, 3, 4]
        #expect(Uncertainty.quantile(sorted: xs, 0.25) == 1.75)
        #expect(Uncertainty.quantile(sorted: xs, 0.5) == 2.5)
        #expect(Uncertainty.quantile(sorted: xs, 1) == 4)
        #expect(Uncertainty.quantile(sorted: xs, 0) == 1)
    }

    @Test func bootstrapMeanAgreesWithNormalInterval() {
        // For a mean of 1000 values the percentile bootstrap approaches mean ± 1.96·se.
        let xs = Self.sample(1000, seed: 7, scale: 2)
        let m = Metrics.mean(xs), se = Uncertainty.standardError(xs)
        let b = Uncertainty.meanInterval(xs)
        let normal = Uncertainty.normalInterval(mean: m, standardError: se)
        #expect(b.contains(m))
        #expect(abs(b.halfWidth / normal.halfWidth - 1) < 0.1, "bootstrap \(b) vs normal \(normal)")
        #expect(abs((b.low + b.high) / 2 - m) < 0.15 * se)
    }

    @Test func bootstrapIsSeeded() {
        let xs = Self.sample(200, seed: 3)
        let a = Uncertainty.meanInterval(xs, seed: 42), b = Uncertainty.meanInterval(xs, seed: 42)
        let c = Uncertainty.meanInterval(xs, seed: 43)
        #expect(a == b)
        #expect(a != c)
        #expect(abs(a.halfWidth - c.halfWidth) < 0.15 * a.halfWidth)
    }

    @Test func perplexityIntervalOfIdenticalWindowsIsAPoint() {
        // Every window the same: every resample gives exp(−ll/w).
        let ll = [Double](repeating: -512, count: 50), w = [Double](repeating: 128, count: 50)
        let i = Uncertainty.perplexityInterval(loglikelihoods: ll, weights: w, replicates: 200)
        #expect(abs(i.low - exp(4)) < 1e-9 && abs(i.high - exp(4)) < 1e-9)
    }

    @Test func perplexityIntervalContainsTheEstimate() {
        let w = [Double](repeating: 128, count: 400)
        let ll = Self.sample(400, seed: 11, scale: 40).map { -512 + $0 }
        let ppl = Metrics.weightedPerplexity(zip(ll, w).map { ($0, $1) })
        let i = Uncertainty.perplexityInterval(loglikelihoods: ll, weights: w)
        #expect(i.low < ppl && ppl < i.high)
        // Delta method: se(log ppl) = se(mean ll per window) / w; the interval in log space is
        // about ±1.96 of that.
        let seLog = Uncertainty.standardError(ll) / 128
        #expect(abs(log(i.high / i.low) / 2 / (Uncertainty.z95 * seLog) - 1) < 0.1)
    }

    @Test func pairedIsNarrowerThanUnpairedOnCorrelatedData() {
        // Document difficulty is shared by both models; the variant is worse by 0.05 with little noise.
        let difficulty = Self.sample(500, seed: 5)
        let noise = Self.sample(500, seed: 6, scale: 0.1)
        let baseline = difficulty
        let variant = zip(difficulty, noise).map { $0 - 0.05 + $1 }
        let paired = Uncertainty.pairedDifference(variant: variant, baseline: baseline)
        let unpaired = Uncertainty.unpairedDifference(variant: variant, baseline: baseline)
        #expect(abs(paired.mean - unpaired.mean) < 1e-12)
        #expect(paired.standardError < unpaired.standardError / 5)
        #expect(paired.isResolved)
        #expect(!unpaired.isResolved)
    }

    @Test func pairedDifferenceOfBinaryOutcomesIsMcNemar() {
        // b documents right only in the baseline, c only in the variant: McNemar's variance of the
        // difference in proportions is (b + c − (c − b)²/n) / n², ours is that · n/(n − 1).
        let n = 400, b = 30, c = 18
        var v = [Double](repeating: 1, count: n), base = [Double](repeating: 1, count: n)
        for i in 0 ..< b { v[i] = 0 }
        for i in b ..< b + c { base[i] = 0 }
        let d = Uncertainty.pairedDifference(variant: v, baseline: base)
        let nd = Double(n)
        let mcnemar = (Double(b + c) - pow(Double(c - b), 2) / nd) / (nd * nd)
        #expect(abs(d.mean - Double(c - b) / nd) < 1e-15)
        #expect(abs(d.standardError * d.standardError - mcnemar * nd / (nd - 1)) < 1e-15)
    }

    @Test func pairedPerplexityRatio() {
        let w = [Double](repeating: 100, count: 300)
        let base = Self.sample(300, seed: 21, scale: 30).map { -400 + $0 }
        // The variant loses 10 nats per window everywhere: ratio exactly exp(0.1) in every resample.
        let shifted = base.map { $0 - 10 }
        let i = Uncertainty.pairedPerplexityRatio(variant: shifted, baseline: base, weights: w, replicates: 300)
        #expect(abs(i.low - exp(0.1)) < 1e-12 && abs(i.high - exp(0.1)) < 1e-12)
        // With noise the paired ratio's interval is far narrower than the two perplexities' own.
        let noisy = zip(base, Self.sample(300, seed: 22, scale: 2)).map { $0 - 10 + $1 }
        let r = Uncertainty.pairedPerplexityRatio(variant: noisy, baseline: base, weights: w)
        let own = Uncertainty.perplexityInterval(loglikelihoods: base, weights: w)
        #expect(r.contains(exp(-(noisy.reduce(0, +) - base.reduce(0, +)) / w.reduce(0, +))))
        #expect(log(r.high / r.low) < log(own.high / own.low) / 5)
    }

    @Test func averageOfMeans() {
        let a = Uncertainty.averageOfMeans([0.5, 0.7, 0.3], standardErrors: [0.03, 0.04, 0.012])
        #expect(abs(a.mean - 0.5) < 1e-15)
        #expect(abs(a.standardError - (0.0009 + 0.0016 + 0.000144).squareRoot() / 3) < 1e-15)
    }

    @Test func pooledStandardErrorIsLmEvals() {
        // lm-eval's pooled_sample_stderr([0.1, 0.2], [10, 20]) by hand:
        // (9·0.01·10 + 19·0.04·20) / (30 − 2) / 30 = 16.1 / 28 / 30.
        #expect(abs(Uncertainty.pooledStandardError([0.1, 0.2], sizes: [10, 20]) - (16.1 / 28 / 30).squareRoot()) < 1e-15)
    }

    @Test func spreadOfRepeatedRounds() throws {
        let s = try #require(Spread([3, 1, 2, .nan]))
        #expect(s == Spread(median: 2, min: 1, max: 3, count: 3))
        let r = try #require(Spread.ratios([2, 4, 9], [1, 2, 3]))
        #expect(r == Spread(median: 2, min: 2, max: 3, count: 3))
        #expect(r.contains(2.5) && !r.contains(1))
        #expect(Spread([]) == nil)
    }

    /// Student-t quantiles against the closed forms for 1 and 2 degrees of freedom and against
    /// the printed 97.5% table (scipy.stats.t.ppf).
    @Test func studentTQuantiles() {
        for p in [0.6, 0.9, 0.975, 0.995] {
            #expect(abs(Uncertainty.studentTQuantile(p, degreesOfFreedom: 1) - tan(Double.pi * (p - 0.5))) < 1e-9)
            #expect(abs(Uncertainty.studentTQuantile(p, degreesOfFreedom: 2) - (2 * p - 1) / (2 * p * (1 - p)).squareRoot()) < 1e-9)
        }
        let table: [(Int, Double)] = [(3, 3.1824463052837078), (4, 2.7764451051977934), (6, 2.4469118511449786),
                                      (10, 2.228138851986274), (30, 2.0422724563012378)]
        for (df, t) in table { #expect(abs(Uncertainty.studentTQuantile(0.975, degreesOfFreedom: df) - t) < 1e-9) }
        #expect(abs(Uncertainty.studentTQuantile(0.025, degreesOfFreedom: 3) + 3.1824463052837078) < 1e-9)
        #expect(abs(Uncertainty.studentTQuantile(0.975, degreesOfFreedom: 1_000_000) - Uncertainty.z95) < 1e-5)
    }

    /// I_x(a, b) against its closed forms: I_x(a, 1) = x^a, I_x(1, b) = 1 − (1 − x)^b,
    /// I_x(½, ½) = (2/π)·asin(√x).
    @Test func incompleteBetaClosedForms() {
        for x in [0.01, 0.2, 0.5, 0.73, 0.99] {
            #expect(abs(Uncertainty.regularizedIncompleteBeta(x, a: 3.5, b: 1) - pow(x, 3.5)) < 1e-12)
            #expect(abs(Uncertainty.regularizedIncompleteBeta(x, a: 1, b: 2.5) - (1 - pow(1 - x, 2.5))) < 1e-12)
            #expect(abs(Uncertainty.regularizedIncompleteBeta(x, a: 0.5, b: 0.5) - 2 / Double.pi * asin(x.squareRoot())) < 1e-12)
        }
        #expect(Uncertainty.regularizedIncompleteBeta(0, a: 2, b: 3) == 0 && Uncertainty.regularizedIncompleteBeta(1, a: 2, b: 3) == 1)
    }

    /// The paired-ratio interval by hand, and the case it exists for: three rounds all on one
    /// side of 1 that the t-interval does not resolve.
    @Test func pairedRatioInterval() throws {
        // log ratios 0.1 and 0.3: mean 0.2, sd √0.02, se 0.1, t(0.975, 1) = 12.7062047361747.
        let two = try #require(Spread.ratioInterval([exp(0.1) * 5, exp(0.3) * 7], [5, 7]))
        #expect(abs(log(two.low) - (0.2 - 1.270620473617471)) < 1e-9)
        #expect(abs(log(two.high) - (0.2 + 1.270620473617471)) < 1e-9)
        // 0.9, 0.75, 0.833: min–max excludes 1, the interval [0.658, 1.036] does not.
        let three = try #require(Spread.ratioInterval([90, 60, 100], [100, 80, 120]))
        #expect(three.contains(1) && abs(three.low - 0.6576) < 1e-3 && abs(three.high - 1.0362) < 1e-3)
        #expect(!Spread.ratiosResolved([90, 60, 100], [100, 80, 120]))
        // Tighter rounds resolve: 0.90, 0.88, 0.91.
        #expect(Spread.ratiosResolved([90, 88, 91], [100, 100, 100]))
        // Identical ratios give a point interval: resolved unless the ratio is 1.
        #expect(Spread.ratiosResolved([5, 5], [10, 10]) && !Spread.ratiosResolved([10, 10], [10, 10]))
        // Fewer than two usable pairs: no interval, never resolved.
        #expect(Spread.ratioInterval([1, .nan, 0], [2, 1, 1]) == nil)
        #expect(!Spread.ratiosResolved([1], [2]))
    }
}
