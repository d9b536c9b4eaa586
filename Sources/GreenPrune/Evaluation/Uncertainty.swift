import Foundation

/// A confidence interval for one figure: `low ... high` at `level` (0.95 unless said).
public struct Interval: Codable, Equatable, Sendable {
    public var low: Double
    public var high: Double
    public var level: Double

    public init(low: Double, high: Double, level: Double = 0.95) {
        self.low = low
        self.high = high
        self.level = level
    }

    enum CodingKeys: String, CodingKey { case low, high, level }

    /// Half the width, for `value ± halfWidth` where the interval is (nearly) symmetric.
    public var halfWidth: Double { (high - low) / 2 }

    /// Whether `x` lies inside (ends included).
    public func contains(_ x: Double) -> Bool { low <= x && x <= high }
}

/// A paired comparison of a variant with its baseline on the same documents.
public struct PairedDifference: Codable, Equatable, Sendable {
    /// Mean of the per-document differences (variant − baseline), in the metric's own units.
    public var mean: Double
    /// Standard error of that mean: sd(d) / √n with the n − 1 denominator (lm-eval's `mean_stderr`
    /// applied to the differences; for 0/1 metrics this is McNemar's variance up to n/(n−1)).
    public var standardError: Double
    /// Normal 95% interval, mean ± 1.96 · standardError.
    public var interval: Interval
    /// Documents compared.
    public var count: Int

    enum CodingKeys: String, CodingKey {
        case mean, standardError = "stderr", interval, count
    }

    /// Whether the interval excludes zero: the difference is resolved, not noise.
    public var isResolved: Bool { !interval.contains(0) }
}

/// Uncertainty of evaluation figures: lm-eval's standard errors, seeded percentile bootstraps for
/// statistics that are not means (perplexity), paired differences against a baseline, and the
/// spread of repeated measurements.
///
/// Everything is a pure function of its inputs and seed; the report recomputes intervals from the
/// per-document values `evaluate` stores, so two reports of the same runs agree digit for digit.
public enum Uncertainty {
    /// z for a two-sided 95% normal interval.
    public static let z95 = 1.959963984540054

    /// Default bootstrap replicates: enough that the 2.5% and 97.5% percentiles move by well under
    /// a tenth of the interval between seeds.
    public static let defaultReplicates = 2000

    /// Default seed, so that intervals are reproducible unless the caller asks for another.
    public static let defaultSeed: UInt64 = 1234

    /// lm-eval's `mean_stderr`: sample standard deviation (n − 1) / √n. NaN below two values.
    public static func standardError(_ xs: [Double]) -> Double {
        Metrics.standardErrorOfMean(xs)
    }

    /// mean ± z · se as an interval.
    public static func normalInterval(mean: Double, standardError se: Double, level: Double = 0.95) -> Interval {
        let z = level == 0.95 ? z95 : normalQuantile(0.5 + level / 2)
        return Interval(low: mean - z * se, high: mean + z * se, level: level)
    }

    /// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
    public static func normalQuantile(_ p: Double) -> Double {
        precondition(p > 0 && p < 1, "normal quantile of p outside (0, 1)")
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                 -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let lowTail = 0.02425
        if p < lowTail {
            let q = (-2 * log(p)).squareRoot()
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
                / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        if p > 1 - lowTail { return -normalQuantile(1 - p) }
        let q = p - 0.5, r = q * q
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    }

    /// The `p`-quantile of Student's t distribution with `df` degrees of freedom: bisection on
    /// the distribution function, P(T ≤ t) = 1 − I_x(df/2, 1/2) / 2 for t ≥ 0 with x = df/(df + t²).
    public static func studentTQuantile(_ p: Double, degreesOfFreedom df: Int) -> Double {
        precondition(p > 0 && p < 1 && df > 0, "t quantile needs p in (0, 1) and df > 0")
        if p < 0.5 { return -studentTQuantile(1 - p, degreesOfFreedom: df) }
        let nu = Double(df)
        func cdf(_ t: Double) -> Double { 1 - 0.5 * regularizedIncompleteBeta(nu / (nu + t * t), a: nu / 2, b: 0.5) }
        var lo = 0.0, hi = 1.0
        while cdf(hi) < p { lo = hi; hi *= 2 }
        for _ in 0..<200 where hi - lo > 1e-13 * hi {
            let mid = (lo + hi) / 2
            if cdf(mid) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// I_x(a, b), the regularized incomplete beta function, by its continued fraction (modified
    /// Lentz), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where the fraction converges slowly.
    public static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedIncompleteBeta(1 - x, a: b, b: a) }
        let logBeta: Double = lgamma(a) + lgamma(b) - lgamma(a + b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let front = exp(logPowers - logBeta) / a
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var f = d
        for m in 1...300 {
            let mm = Double(m)
            for step in 0..<2 {
                let num = step == 0
                    ? mm * (b - mm) * x / ((a + 2 * mm - 1) * (a + 2 * mm))
                    : -(a + mm) * (a + b + mm) * x / ((a + 2 * mm) * (a + 2 * mm + 1))
                d = 1 + num * d
                if abs(d) < tiny { d = tiny }
                c = 1 + num / c
                if abs(c) < tiny { c = tiny }
                d = 1 / d
                f *= c * d
            }
            if abs(c * d - 1) < 1e-15 { break }
        }
        return front * f
    }

    /// The `q`-quantile of sorted values, linear between order statistics (numpy's default).
    public static func quantile(sorted xs: [Double], _ q: Double) -> Double {
        guard !xs.isEmpty else { return .nan }
        let h = Double(xs.count - 1) * q
        let lo = Int(h.rounded(.down)), hi = min(lo + 1, xs.count - 1)
        return xs[lo] + (h - Double(lo)) * (xs[hi] - xs[lo])
    }

    /// Percentile bootstrap: `replicates` resamples of `n` indices drawn with replacement (seeded),
    /// `statistic` of each, and the (1 − level)/2 and (1 + level)/2 quantiles of those values.
    /// `statistic` receives, for each of the n slots, how many times that index was drawn, which
    /// lets sums be formed without materialising the resample.
    public static func bootstrap(count n: Int, replicates: Int = defaultReplicates, seed: UInt64 = defaultSeed,
                                 level: Double = 0.95, statistic: ([Int]) -> Double) -> Interval {
        guard n > 0, replicates > 0 else { return Interval(low: .nan, high: .nan, level: level) }
        var rng = SplitMix64(seed: seed)
        var values: [Double] = []
        values.reserveCapacity(replicates)
        var counts = [Int](repeating: 0, count: n)
        for _ in 0 ..< replicates {
            for i in 0 ..< n { counts[i] = 0 }
            for _ in 0 ..< n { counts[Int(rng.next() % UInt64(n))] += 1 }
            values.append(statistic(counts))
        }
        values.sort()
        return Interval(low: quantile(sorted: values, (1 - level) / 2), high: quantile(sorted: values, (1 + level) / 2),
                        level: level)
    }

    /// Bootstrap interval of the mean of `xs` (documents resampled).
    public static func meanInterval(_ xs: [Double], replicates: Int = defaultReplicates, seed: UInt64 = defaultSeed) -> Interval {
        bootstrap(count: xs.count, replicates: replicates, seed: seed) { counts in
            var s = 0.0
            for i in counts.indices where counts[i] != 0 { s += Double(counts[i]) * xs[i] }
            return s / Double(xs.count)
        }
    }

    /// Bootstrap interval of a token-weighted perplexity exp(−Σll / Σw) over documents or windows
    /// (`loglikelihoods[i]` the summed ln p of item i, `weights[i]` its tokens, words or bytes).
    public static func perplexityInterval(loglikelihoods ll: [Double], weights w: [Double],
                                          replicates: Int = defaultReplicates, seed: UInt64 = defaultSeed) -> Interval {
        precondition(ll.count == w.count, "log-likelihoods and weights differ in count")
        return bootstrap(count: ll.count, replicates: replicates, seed: seed) { counts in
            var sl = 0.0, sw = 0.0
            for i in counts.indices where counts[i] != 0 {
                sl += Double(counts[i]) * ll[i]
                sw += Double(counts[i]) * w[i]
            }
            return exp(-sl / sw)
        }
    }

    /// Paired difference of a per-document metric (variant − baseline) on the same documents.
    public static func pairedDifference(variant: [Double], baseline: [Double]) -> PairedDifference {
        precondition(variant.count == baseline.count, "paired samples differ in count")
        let d = zip(variant, baseline).map { $0 - $1 }
        let m = Metrics.mean(d), se = standardError(d)
        return PairedDifference(mean: m, standardError: se, interval: normalInterval(mean: m, standardError: se), count: d.count)
    }

    /// Unpaired difference of two means, for comparison: se = √(se_a² + se_b²).
    public static func unpairedDifference(variant: [Double], baseline: [Double]) -> PairedDifference {
        let m = Metrics.mean(variant) - Metrics.mean(baseline)
        let se = (pow(standardError(variant), 2) + pow(standardError(baseline), 2)).squareRoot()
        return PairedDifference(mean: m, standardError: se, interval: normalInterval(mean: m, standardError: se),
                                count: min(variant.count, baseline.count))
    }

    /// Paired bootstrap of the perplexity ratio variant / baseline: the same resampled windows for
    /// both, so what the two models share (hard windows stay hard) cancels.
    public static func pairedPerplexityRatio(variant: [Double], baseline: [Double], weights: [Double],
                                             replicates: Int = defaultReplicates, seed: UInt64 = defaultSeed) -> Interval {
        precondition(variant.count == baseline.count && variant.count == weights.count, "paired samples differ in count")
        return bootstrap(count: weights.count, replicates: replicates, seed: seed) { counts in
            var dv = 0.0, sw = 0.0
            for i in counts.indices where counts[i] != 0 {
                dv += Double(counts[i]) * (variant[i] - baseline[i])
                sw += Double(counts[i]) * weights[i]
            }
            // exp(−Σll_v/Σw) / exp(−Σll_b/Σw) = exp(−Σ(ll_v − ll_b)/Σw)
            return exp(-dv / sw)
        }
    }

    /// The unweighted mean of k task means (LLM-Pruner's average accuracy) and its standard error
    /// √(Σ se_i²) / k, the tasks' documents being independent.
    public static func averageOfMeans(_ means: [Double], standardErrors ses: [Double]) -> (mean: Double, standardError: Double) {
        precondition(means.count == ses.count, "means and standard errors differ in count")
        let k = Double(means.count)
        return (Metrics.mean(means), (ses.reduce(0) { $0 + $1 * $1 }).squareRoot() / k)
    }

    /// lm-eval's `pooled_sample_stderr`: the standard error of a size-weighted group mean from its
    /// subtasks' standard errors and sizes.
    public static func pooledStandardError(_ ses: [Double], sizes: [Int]) -> Double {
        precondition(ses.count == sizes.count, "standard errors and sizes differ in count")
        let n = Double(sizes.reduce(0, +))
        var v = 0.0
        for (se, size) in zip(ses, sizes) { v += Double(size - 1) * se * se * Double(size) }
        return (v / (n - Double(sizes.count)) / n).squareRoot()
    }
}

/// Repeated measurements of one figure (speed, energy, peak memory): the median and the range.
public struct Spread: Codable, Equatable, Sendable {
    public var median: Double
    public var min: Double
    public var max: Double
    public var count: Int

    enum CodingKeys: String, CodingKey { case median, min, max, count }

    /// nil for no finite values.
    public init?(_ values: [Double]) {
        let xs = values.filter(\.isFinite).sorted()
        guard !xs.isEmpty else { return nil }
        median = Uncertainty.quantile(sorted: xs, 0.5)
        min = xs[0]
        max = xs[xs.count - 1]
        count = xs.count
    }

    public init(median: Double, min: Double, max: Double, count: Int) {
        self.median = median
        self.min = min
        self.max = max
        self.count = count
    }

    /// The ratios of paired rounds (variant round i / baseline round i): median and range. Pairing
    /// by round cancels what one round shares (another process taking a core for a minute).
    public static func ratios(_ variant: [Double], _ baseline: [Double]) -> Spread? {
        Spread(zip(variant, baseline).map { $0 / $1 })
    }

    /// Whether `x` lies inside [min, max].
    public func contains(_ x: Double) -> Bool { min <= x && x <= max }

    /// The Student-t interval of the geometric mean of paired ratios: exp(m ± t · s / √n), where
    /// m and s are the mean and sample standard deviation of log(variant_i / baseline_i) over the
    /// n pairs with both values finite and positive, and t the (1 + level)/2 quantile with n − 1
    /// degrees of freedom. nil below two pairs.
    ///
    /// This, not the min–max range, decides whether a repeated figure differs from its baseline:
    /// with k rounds and no real difference, all k ratios fall on one side of 1 with probability
    /// 2^(1−k) (25% for three rounds), while the t-interval keeps its stated level for any k.
    public static func ratioInterval(_ variant: [Double], _ baseline: [Double], level: Double = 0.95) -> Interval? {
        let logs = zip(variant, baseline).compactMap { v, b -> Double? in
            v.isFinite && b.isFinite && v > 0 && b > 0 ? log(v / b) : nil
        }
        guard logs.count > 1 else { return nil }
        let n = Double(logs.count)
        let m = logs.reduce(0, +) / n
        let s = (logs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot()
        let h = Uncertainty.studentTQuantile(0.5 + level / 2, degreesOfFreedom: logs.count - 1) * s / n.squareRoot()
        return Interval(low: exp(m - h), high: exp(m + h), level: level)
    }

    /// Whether paired rounds resolve a difference from the baseline: their `ratioInterval`
    /// excludes 1. False below two pairs.
    public static func ratiosResolved(_ variant: [Double], _ baseline: [Double]) -> Bool {
        ratioInterval(variant, baseline).map { !$0.contains(1) } ?? false
    }
}
