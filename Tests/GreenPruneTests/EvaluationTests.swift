import Foundation
import Testing
import GreenPrune

/// The engine with a dummy model known in closed form: request construction, rolling
/// windows, batching, KV reuse, and the metrics' arithmetic.
@Suite struct EvaluationTests {
    // MARK: rolling windows

    @Test func rollingWindowsMatchLmEvalByHand() {
        // get_rolling_token_windows(t0..t9, prefix P, max_seq_len 4, context_len 1), disjoint:
        // ([P], t0..t3), ([t3], t4..t7), ([t5 t6 t7], [t8 t9]).
        let t = Array(10 ..< 20)
        let raw = RollingWindows.tokenWindows(tokens: t, prefixToken: 99, maxLength: 4)
        #expect(raw.map(\.input) == [[99, 10, 11, 12], [13, 14, 15, 16], [15, 16, 17, 18]])
        #expect(raw.map(\.target) == [[10, 11, 12, 13], [14, 15, 16, 17], [18, 19]])
        let w = RollingWindows.windows(tokens: t, prefixToken: 99, maxLength: 4)
        #expect(w.map(\.context) == [[99], [13], [15, 16, 17]])
        #expect(w.map(\.continuation) == [[10, 11, 12, 13], [14, 15, 16, 17], [18, 19]])
        #expect(RollingWindows.windows(tokens: [], prefixToken: 99, maxLength: 4).isEmpty)
        // Shorter than one window: a single window reading the prefix.
        let one = RollingWindows.windows(tokens: [5, 6], prefixToken: 1, maxLength: 4)
        #expect(one.count == 1 && one[0].context == [1] && one[0].continuation == [5, 6])
    }

    @Test func rollingWindowsPredictEveryTokenOnceWithLInputs() {
        for n in 1 ... 40 {
            for L in 1 ... 9 {
                let t = (0 ..< n).map { 100 + $0 }
                let w = RollingWindows.windows(tokens: t, prefixToken: 7, maxLength: L)
                #expect(w.flatMap(\.continuation) == t, "n=\(n) L=\(L)")
                #expect(w[0].context == [7])
                for (i, x) in w.enumerated() {
                    let sequence = x.context + x.continuation
                    // The model reads sequence minus its last token: L inputs, except a first
                    // window shorter than L.
                    let inputs = sequence.count - 1
                    #expect(i == 0 ? inputs == min(L, n) : inputs == L, "n=\(n) L=\(L) window \(i)")
                    #expect(x.continuation.count <= L)
                    if i > 0 {
                        // The context is the tokens right before the targets, in order.
                        let start = t.firstIndex(of: x.continuation[0]) ?? 0
                        #expect(Array(t[(start - x.context.count) ..< start]) == x.context)
                        if i < w.count - 1 { #expect(x.context.count == 1) }
                    }
                }
            }
        }
    }

    @Test func rollingRequestSumsEveryTokenOnce() throws {
        // "abcdefghij" with the char tokenizer: ids 100..109 (a = 97 + 3). Each token after the
        // first follows its predecessor (+1) so it is the successor; the first follows BOS.
        let tok = CharTokenizer()
        let lm = DummyLM(maxLength: 4)
        let ev = Evaluator(model: lm, tokenizer: tok, options: ScorerOptions(kvReuse: true, batchTokens: 64), showProgress: false)
        let doc = TaskDocument(id: 0, requests: [.loglikelihoodRolling(text: "abcdefghij")])
        let a = try ev.answer([doc])[0][0]
        let z = log(exp(2.0) + 511)
        // t0 after BOS: not a successor; t1..t9 successors (9 of them).
        #expect(abs(a.loglikelihood - (-z + 9 * (2 - z))) < 1e-4)
        #expect(a.tokenCount == 10)
        #expect(!a.isGreedy)
        // The windows the model saw: [BOS a b c d], [d e f g h], [f g h i j] (inputs of length 4).
        let seen = lm.plainCalls.flatMap { $0 }.map(\.tokens).sorted { $0[0] < $1[0] }
        #expect(seen == [[1, 100, 101, 102, 103], [103, 104, 105, 106, 107], [105, 106, 107, 108, 109]])
    }

    // MARK: context / continuation split

    @Test func trailingWhitespaceMovesToContinuation() throws {
        let tok = CharTokenizer()
        let enc = RequestEncoder(tokenizer: tok, maxLength: 64)
        let (c, k) = RequestEncoder.moveTrailingWhitespace(context: "Answer: \n\t ", continuation: "yes")
        #expect(c == "Answer:" && k == " \n\t yes")
        let (ctx, cont) = try enc.encodePair(context: "ab  ", continuation: "c")
        #expect(ctx == [100, 101])            // "ab"
        #expect(cont == [35, 35, 102])        // "  c"
        // No trailing whitespace: nothing moves.
        let (ctx2, cont2) = try enc.encodePair(context: "ab", continuation: " c")
        #expect(ctx2 == [100, 101] && cont2 == [35, 102])
    }

    @Test func continuationIsWholeMinusContextTokens() throws {
        // A merging tokenizer: "Answer: yes" → ["Answer:", " yes"]; the context "Answer: "
        // loses its space, which the continuation's first token carries.
        let tok = WordTokenizer()
        let enc = RequestEncoder(tokenizer: tok, maxLength: 64)
        let (ctx, cont) = try enc.encodePair(context: "Answer: ", continuation: "yes")
        #expect(tok.decode(ctx, skipSpecialTokens: false) == "Answer:")
        #expect(tok.decode(cont, skipSpecialTokens: false) == " yes")
        // whole = encode("abcdef") = one token; ctx = encode("abc") = one token: the
        // continuation is whole[1...], empty — lm-eval's split, not encode("def").
        let (c2, k2) = try enc.encodePair(context: "abc", continuation: "def")
        #expect(c2.count == 1 && k2.isEmpty)
    }

    @Test func emptyContextReadsBosElseEos() throws {
        let withBos = RequestEncoder(tokenizer: CharTokenizer(bos: 1, eos: 2), maxLength: 64)
        #expect(try withBos.encodePair(context: "", continuation: "ab") == ([1], [100, 101]))
        let noBos = RequestEncoder(tokenizer: CharTokenizer(bos: nil, eos: 2), maxLength: 64)
        #expect(try noBos.encodePair(context: "", continuation: "ab") == ([2], [100, 101]))
        // A tokenizer that adds BOS by default gets it on both encodes (add_bos_token).
        let adds = RequestEncoder(tokenizer: CharTokenizer(addsBos: true), maxLength: 64)
        let (c, k) = try adds.encodePair(context: "a ", continuation: "b")
        #expect(c == [1, 100] && k == [35, 101])
    }

    @Test func longSequencesKeepTheirLastMaxLengthPlusOneTokens() {
        let enc = RequestEncoder(tokenizer: CharTokenizer(), maxLength: 4)
        let r = enc.truncated(context: [1, 2, 3, 4, 5], continuation: [6, 7])
        #expect(r.tokens == [3, 4, 5, 6, 7] && r.scoreFrom == 3)
    }

    // MARK: the engine

    /// Requests of three multiple-choice documents (shared contexts) plus odd ones.
    func mixedRequests() -> (requests: [ScoreRequest], groups: [Int]) {
        var reqs: [ScoreRequest] = []
        var groups: [Int] = []
        for d in 0 ..< 3 {
            let ctx = Array((10 * d + 5) ..< (10 * d + 9 + d))
            for c in 0 ..< 4 {
                reqs.append(ScoreRequest(tokens: ctx + Array((200 + c) ..< (202 + c + d)), scoreFrom: ctx.count))
                groups.append(d)
            }
        }
        for n in [3, 9, 2, 7] {
            reqs.append(ScoreRequest(tokens: Array(300 ..< 300 + n), scoreFrom: 1))
            groups.append(10 + n)
        }
        return (reqs, groups)
    }

    @Test func kvReuseAndPlainPathsGiveEqualResultsInOrder() throws {
        let (reqs, groups) = mixedRequests()
        let reference = reqs.map { DummyLM().scoreOne($0.tokens, from: $0.scoreFrom) }

        let reuseModel = DummyLM()
        let reuse = try Scorer(model: reuseModel, options: ScorerOptions(kvReuse: true, batchTokens: 24)).score(reqs, groups: groups)
        let plainModel = DummyLM()
        let plain = try Scorer(model: plainModel, options: ScorerOptions(kvReuse: false, batchTokens: 24)).score(reqs, groups: groups)
        let single = try Scorer(model: DummyLM(), options: ScorerOptions(kvReuse: false, batchTokens: 1)).score(reqs, groups: groups)
        #expect(reuse == reference)
        #expect(plain == reference)
        #expect(single == reference)
        // KV reuse: one prefix call per document, four continuations each; the rest plain.
        #expect(reuseModel.prefixCalls.count == 3)
        #expect(reuseModel.prefixCalls.allSatisfy { $0.continuations.count == 4 })
        #expect(reuseModel.plainCalls.flatMap { $0 }.count == 4)
        #expect(plainModel.prefixCalls.isEmpty)
    }

    @Test func plainBatchesAreSortedAndWithinTheTokenBudget() throws {
        let (reqs, groups) = mixedRequests()
        let model = DummyLM()
        let scorer = Scorer(model: model, options: ScorerOptions(kvReuse: false, batchTokens: 24))
        _ = try scorer.score(reqs, groups: groups)
        let lengths = model.plainCalls.flatMap { $0.map(\.tokens.count) }
        #expect(lengths == lengths.sorted(by: >))
        #expect(lengths.count == reqs.count)
        for b in model.plainCalls where b.count > 1 {
            #expect(b.count * (b.map(\.tokens.count).max() ?? 0) <= 24)
        }
        // batchTokens 1: one request per call (the lm-eval-like baseline).
        let one = DummyLM()
        _ = try Scorer(model: one, options: ScorerOptions(kvReuse: false, batchTokens: 1)).score(reqs, groups: groups)
        #expect(one.plainCalls.count == reqs.count && one.plainCalls.allSatisfy { $0.count == 1 })
        #expect(scorer.timings.reduce(0) { $0 + $1.requests } == reqs.count)
    }

    /// BatchPlan's cuts are the cheapest segmentation (Σ b·t + callCost per call, b·t ≤ budget
    /// unless alone), checked against every segmentation of small sorted lists.
    @Test func batchPlanIsOptimalAndWithinBudget() {
        var seed: UInt32 = 5
        func rnd(_ n: Int) -> Int { seed = seed &* 1664525 &+ 1013904223; return Int(seed >> 8) % n }
        for trial in 0 ..< 40 {
            let n = 1 + rnd(10)
            let lengths = (0 ..< n).map { _ in 1 + rnd(30) }.sorted(by: >)
            let budget = 20 + rnd(60), callCost = trial % 3 == 0 ? 0 : rnd(40)
            let plan = BatchPlan.cuts(lengths, budget: budget, callCost: callCost)
            #expect(plan.first?.lowerBound == 0 && plan.last?.upperBound == n)
            #expect(zip(plan, plan.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            func cost(_ r: Range<Int>) -> Int? {
                r.count > 1 && r.count * lengths[r.lowerBound] > budget ? nil : r.count * lengths[r.lowerBound] + callCost
            }
            #expect(plan.allSatisfy { cost($0) != nil })
            // Brute force over the 2^(n−1) ways to cut.
            var best = Int.max
            for mask in 0 ..< (1 << (n - 1)) {
                var total = 0, start = 0, ok = true
                for i in 1 ... n where i == n || mask & (1 << (i - 1)) != 0 {
                    guard let c = cost(start ..< i) else { ok = false; break }
                    total += c; start = i
                }
                if ok { best = min(best, total) }
            }
            #expect(plan.reduce(0) { $0 + cost($1)! } == best, "lengths \(lengths) budget \(budget)")
        }
        // A sequence longer than the budget goes alone; an empty list has no calls.
        #expect(BatchPlan.cuts([50, 10, 10], budget: 20, callCost: 0) == [0 ..< 1, 1 ..< 3])
        #expect(BatchPlan.cuts([], budget: 20).isEmpty)
    }

    @Test func protocolDefaultPrefixPathEqualsPlain() throws {
        let (reqs, groups) = mixedRequests()
        let a = try Scorer(model: DummyLM(ownPrefixPath: false), options: ScorerOptions(kvReuse: true)).score(reqs, groups: groups)
        let b = try Scorer(model: DummyLM(), options: ScorerOptions(kvReuse: false)).score(reqs, groups: groups)
        #expect(a == b)
    }

    @Test func badScoreFromIsAnError() {
        #expect(throws: InputError.self) {
            try Scorer(model: DummyLM()).score([ScoreRequest(tokens: [1, 2], scoreFrom: 0)])
        }
    }

    // MARK: metrics

    @Test func accuracyTakesTheFirstMaximum() {
        #expect(Metrics.argmax([1, 3, 3, 2]) == 1)
        #expect(Metrics.accuracy(loglikelihoods: [-1, -1], gold: 0) == 1)
        #expect(Metrics.accuracy(loglikelihoods: [-1, -1], gold: 1) == 0)
        #expect(Metrics.accuracy(loglikelihoods: [-3, -2, -5], gold: 1) == 1)
    }

    @Test func normalizedAccuracyDividesByUnicodeScalars() {
        // ll / len: "ab" → −4/2 = −2; "xyz" → −4.5/3 = −1.5 wins although its ll is lower.
        #expect(Metrics.normalizedAccuracy(loglikelihoods: [-4, -4.5], choices: ["ab", "xyz"], gold: 1) == 1)
        // "é" as e + U+0301 is 2 scalars (1 Character): −3/2 = −1.5 beats "x" at −2/1.
        #expect(Metrics.normalizedAccuracy(loglikelihoods: [-3, -2], choices: ["e\u{301}", "x"], gold: 0) == 1)
        // Ties after normalisation: the first.
        #expect(Metrics.normalizedAccuracy(loglikelihoods: [-2, -4], choices: ["a", "bc"], gold: 0) == 1)
    }

    @Test func meanAndStandardError() {
        // numpy: mean 0.6667, std(ddof=1)/√6 = 0.210818510677892.
        let xs: [Double] = [1, 0, 1, 1, 0, 1]
        #expect(abs(Metrics.mean(xs) - 2.0 / 3) < 1e-12)
        #expect(abs(Metrics.standardErrorOfMean(xs) - 0.210818510677892) < 1e-12)
        #expect(Metrics.standardErrorOfMean([1]).isNaN)
        let agg = MetricSpec.acc.aggregate(xs.map { .scalar($0) })
        #expect(abs(agg.value - 2.0 / 3) < 1e-12 && abs((agg.standardError ?? 0) - 0.210818510677892) < 1e-12)
    }

    @Test func perplexities() {
        #expect(abs(Metrics.perplexity(loglikelihoods: [-1, -3]) - exp(2)) < 1e-12)
        let items: [(loglikelihood: Double, weight: Double)] = [(-10, 4), (-6, 4)]
        #expect(abs(Metrics.weightedPerplexity(items) - exp(2)) < 1e-12)
        #expect(abs(Metrics.bitsPerByte(items) - 2 / log(2)) < 1e-12)
    }

    @Test func spearmanUsesAverageRanks() {
        #expect(Metrics.averageRanks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4])
        #expect(Metrics.averageRanks([3, 1, 3, 3]) == [3, 1, 3, 3])
        // scipy.stats.spearmanr(x, y).statistic = 0.7516833018990199
        let x = [0.1, 0.4, 0.4, 0.9, 0.3, 0.7, 0.7, 0.7]
        let y = [1, 2, 3, 3, 0.5, 5, 4, 4]
        #expect(abs(Metrics.spearman(x, y) - 0.7516833018990199) < 1e-12)
    }

    @Test func pythonWhitespaceSplitCounts() {
        // len(re.split(r"\s+", s))
        #expect(TextStatistics.pythonSplitCount("a b  c") == 3)
        #expect(TextStatistics.pythonSplitCount(" a b \n") == 4)
        #expect(TextStatistics.pythonSplitCount("") == 1)
        #expect(TextStatistics.pythonStrip("  x y \n") == "x y")
    }
}
