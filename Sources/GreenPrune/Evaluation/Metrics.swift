import Foundation

/// Per-document metric values and their corpus-level aggregations (lm-eval's `metrics.py`).
public enum Metrics {
    /// Index of the first maximum (numpy's `argmax`: ties go to the lowest index). -1 if empty.
    public static func argmax(_ values: [Double]) -> Int {
        var best = -1
        var bestValue = -Double.infinity
        for (i, v) in values.enumerated() where best < 0 || v > bestValue {
            best = i
            bestValue = v
        }
        return best
    }

    /// `acc`: 1 when the highest log-likelihood is the gold choice's.
    public static func accuracy(loglikelihoods: [Double], gold: Int) -> Double {
        argmax(loglikelihoods) == gold ? 1 : 0
    }

    /// `acc_norm`: 1 when the highest log-likelihood per Unicode scalar of the choice text is gold's.
    public static func normalizedAccuracy(loglikelihoods: [Double], choices: [String], gold: Int) -> Double {
        let normalized = zip(loglikelihoods, choices).map { $0 / Double($1.unicodeScalars.count) }
        return argmax(normalized) == gold ? 1 : 0
    }

    /// Arithmetic mean (NaN for no values).
    public static func mean(_ xs: [Double]) -> Double {
        xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count)
    }

    /// Sample standard deviation (n−1 denominator; NaN below two values).
    public static func sampleStandardDeviation(_ xs: [Double]) -> Double {
        guard xs.count > 1 else { return .nan }
        let m = mean(xs)
        return (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)).squareRoot()
    }

    /// Standard error of the mean: sample standard deviation / √n (lm-eval's `mean_stderr`).
    public static func standardErrorOfMean(_ xs: [Double]) -> Double {
        sampleStandardDeviation(xs) / Double(xs.count).squareRoot()
    }

    /// exp(−mean ll): lambada's `perplexity` aggregation.
    public static func perplexity(loglikelihoods: [Double]) -> Double {
        exp(-mean(loglikelihoods))
    }

    /// exp(−Σll / Σweight): `word_perplexity` (weights = words), `byte_perplexity` (bytes),
    /// token perplexity of the chunked tasks (weights = predicted tokens).
    public static func weightedPerplexity(_ items: [(loglikelihood: Double, weight: Double)]) -> Double {
        let ll = items.reduce(0) { $0 + $1.loglikelihood }
        let w = items.reduce(0) { $0 + $1.weight }
        return exp(-ll / w)
    }

    /// −Σll / (Σbytes · ln 2).
    public static func bitsPerByte(_ items: [(loglikelihood: Double, weight: Double)]) -> Double {
        let ll = items.reduce(0) { $0 + $1.loglikelihood }
        let w = items.reduce(0) { $0 + $1.weight }
        return -ll / (w * M_LN2)
    }

    /// Ranks 1…n with ties given the average of the ranks they span (scipy's `rankdata`).
    public static func averageRanks(_ xs: [Double]) -> [Double] {
        let order = xs.indices.sorted { xs[$0] < xs[$1] }
        var ranks = [Double](repeating: 0, count: xs.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count, xs[order[j + 1]] == xs[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j { ranks[order[k]] = rank }
            i = j + 1
        }
        return ranks
    }

    /// Pearson correlation (NaN when a side is constant or n < 2).
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        guard x.count == y.count, x.count > 1 else { return .nan }
        let mx = mean(x), my = mean(y)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in x.indices {
            sxy += (x[i] - mx) * (y[i] - my)
            sxx += (x[i] - mx) * (x[i] - mx)
            syy += (y[i] - my) * (y[i] - my)
        }
        return sxy / (sxx * syy).squareRoot()
    }

    /// Spearman rank correlation: Pearson of the average ranks (scipy's `spearmanr`).
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double {
        pearson(averageRanks(x), averageRanks(y))
    }

    /// Cosine similarity of two vectors (NaN for a zero vector).
    public static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in 0 ..< min(a.count, b.count) {
            dot += Double(a[i]) * Double(b[i])
            na += Double(a[i]) * Double(a[i])
            nb += Double(b[i]) * Double(b[i])
        }
        return dot / (na * nb).squareRoot()
    }

    /// Mean squared difference of two vectors.
    public static func meanSquaredError(_ a: [Float], _ b: [Float]) -> Double {
        let n = min(a.count, b.count)
        guard n > 0 else { return .nan }
        var s = 0.0
        for i in 0 ..< n { let d = Double(a[i]) - Double(b[i]); s += d * d }
        return s / Double(n)
    }
}

/// Python's `str.isspace` / `re`'s `\s` on text, and the counts the wikitext task needs.
public enum TextStatistics {
    /// Unicode White_Space plus the ASCII information separators U+001C…U+001F, which Python
    /// also treats as whitespace.
    public static func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
        s.properties.isWhitespace || (0x1C ... 0x1F).contains(s.value)
    }

    /// `len(re.split(r"\s+", text))`: whitespace runs + 1 (leading/trailing runs count, as
    /// the empty strings Python's split yields there).
    public static func pythonSplitCount(_ text: String) -> Int {
        var runs = 0
        var inRun = false
        for s in text.unicodeScalars {
            let space = isPythonSpace(s)
            if space && !inRun { runs += 1 }
            inRun = space
        }
        return runs + 1
    }

    /// Python's `str.strip()`.
    public static func pythonStrip(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var lo = 0, hi = scalars.count
        while lo < hi, isPythonSpace(scalars[lo]) { lo += 1 }
        while hi > lo, isPythonSpace(scalars[hi - 1]) { hi -= 1 }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[lo ..< hi])
        return String(out)
    }
}
