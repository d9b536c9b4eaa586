import Foundation

/// The report's uncertainty: each task figure with its 95% interval, each change from the
/// baseline as a paired comparison on the documents both runs scored, and the zero-shot average
/// with its own interval — all from the runs' documents.json.
public enum Significance {
    /// The mark a change carries when its interval includes no change.
    public static let unresolvedMark = "~"

    /// The rule printed under a table that uses `unresolvedMark`.
    public static let rule = "± is the 95% interval (accuracies: lm-eval's standard error × 1.96; perplexities and Spearman: "
        + "percentile bootstrap over documents, 2000 seeded resamples); a change from the baseline is paired on the documents "
        + "both runs scored (per-document differences, or the ratio of perplexities on the same windows), and one marked "
        + "\(unresolvedMark) is within its interval of no change: not resolved."

    /// `metric` of `task` from a run's per-document values.
    public static func estimate(_ scores: DocumentScores?, task: String, metric: String) -> Estimate? {
        scores?.tasks[task]?.metrics[metric]?.estimate()
    }

    /// The variant against the baseline on `task`'s `metric`, paired on shared documents.
    public static func comparison(variant: DocumentScores?, baseline: DocumentScores?, task: String, metric: String) -> MetricComparison? {
        guard let v = variant?.tasks[task], let b = baseline?.tasks[task], let (mv, mb) = v.aligned(metric, with: b) else { return nil }
        return mv.compare(to: mb)
    }

    /// The unweighted mean of the tasks' mean metrics (fractions) and its interval: standard error
    /// √(Σ se_i²) / k over independent tasks.
    public static func average(_ scores: DocumentScores?, of tasks: [(task: String, metric: String)]) -> Estimate? {
        var means: [Double] = [], ses: [Double] = []
        for t in tasks {
            guard let m = scores?.tasks[t.task]?.metrics[t.metric], m.aggregation == "mean", let v = m.values, !v.isEmpty else { return nil }
            means.append(Metrics.mean(v))
            ses.append(Uncertainty.standardError(v))
        }
        guard !means.isEmpty else { return nil }
        let a = Uncertainty.averageOfMeans(means, standardErrors: ses)
        return Estimate(a.mean, a.standardError.isFinite ? Uncertainty.normalInterval(mean: a.mean, standardError: a.standardError) : nil)
    }

    /// The change of the average: the mean of the tasks' paired differences, standard error
    /// √(Σ se_i²) / k of their paired standard errors.
    public static func averageComparison(variant: DocumentScores?, baseline: DocumentScores?,
                                         of tasks: [(task: String, metric: String)]) -> MetricComparison? {
        var diffs: [Double] = [], ses: [Double] = [], n = 0
        for t in tasks {
            guard let v = variant?.tasks[t.task], let b = baseline?.tasks[t.task], let (mv, mb) = v.aligned(t.metric, with: b),
                  mv.aggregation == "mean" else { return nil }
            let d = Uncertainty.pairedDifference(variant: mv.values ?? [], baseline: mb.values ?? [])
            diffs.append(d.mean)
            ses.append(d.standardError)
            n += d.count
        }
        guard !diffs.isEmpty else { return nil }
        let a = Uncertainty.averageOfMeans(diffs, standardErrors: ses)
        let i = a.standardError.isFinite ? Uncertainty.normalInterval(mean: a.mean, standardError: a.standardError) : nil
        return MetricComparison(kind: "difference", estimate: Estimate(a.mean, i), documents: n)
    }

    /// `value ± half-width` with `format` applied to both (a figure with no interval: the value).
    public static func text(_ e: Estimate, scale: Double = 1, format: String) -> String {
        let v = String(format: format, e.value * scale)
        guard let i = e.interval, i.low.isFinite, i.high.isFinite else { return v }
        if isSymmetric(i, around: e.value) { return v + " ± " + String(format: format, i.halfWidth * scale) }
        return v + " [" + String(format: format, i.low * scale) + ", " + String(format: format, i.high * scale) + "]"
    }

    /// A change: `+1.2 ± 0.8` for differences, `×1.15 [1.10, 1.20]` for ratios, with the
    /// unresolved mark in front when the interval includes no change.
    public static func changeText(_ c: MetricComparison, scale: Double = 1, format: String) -> String {
        let mark = c.isResolved ? "" : unresolvedMark
        let e = c.estimate
        if c.kind == "ratio" {
            let v = "×" + String(format: "%.3f", e.value)
            guard let i = e.interval else { return mark + v }
            return mark + v + " [" + String(format: "%.3f", i.low) + ", " + String(format: "%.3f", i.high) + "]"
        }
        let signed = "%+" + format.dropFirst()
        let v = String(format: signed, e.value * scale)
        guard let i = e.interval, i.low.isFinite, i.high.isFinite else { return mark + v }
        if isSymmetric(i, around: e.value) { return mark + v + " ± " + String(format: format, i.halfWidth * scale) }
        return mark + v + " [" + String(format: signed, i.low * scale) + ", " + String(format: signed, i.high * scale) + "]"
    }

    /// Within 5% of the half-width: a normal interval, printed as ±.
    static func isSymmetric(_ i: Interval, around v: Double) -> Bool {
        abs((i.low + i.high) / 2 - v) <= 0.05 * max(i.halfWidth, .leastNonzeroMagnitude)
    }
}
