import Foundation

/// Tokens one decoder forward takes by default (requests × longest sequence): llama.cpp's physical
/// batch (`n_ubatch`). The activations of a forward grow with it (SmolLM2: about 17 KB per token,
/// 69 MB at 4096 tokens, more than the INT4 model's packed weights), while the products are as
/// fast per token at 512 rows as at 4096 for float32 weights (`scripts/bench-quant.sh` measures
/// both). `--batch-tokens` raises it.
public let defaultBatchTokens = 512

/// How the engine schedules work on the model.
public struct ScorerOptions: Sendable, Equatable {
    /// Multiple-choice requests of one document that share their context go through
    /// `score(prefixGroups:)`: the context runs once and every choice continues from it
    /// (documents packed together, `batchTokens` packed tokens per call).
    public var kvReuse: Bool
    /// Upper bound on (requests × longest sequence) in one plain batch; a longer request goes alone.
    /// 1 gives one request per call (the lm-eval-like baseline, batch size 1).
    public var batchTokens: Int
    public init(kvReuse: Bool = true, batchTokens: Int = defaultBatchTokens) {
        self.kvReuse = kvReuse
        self.batchTokens = max(batchTokens, 1)
    }
}

/// One call the engine made to the model, for trace.h5 and the speed figures.
public struct BatchTiming: Sendable, Equatable {
    /// `plain` (a `score(_:)` batch) or `prefix` (one `score(prefixGroups:)` call: documents
    /// whose choices share their context, packed together).
    public enum Kind: Int32, Sendable { case plain = 0, prefix = 1 }
    public var kind: Kind
    /// Requests answered by the call.
    public var requests: Int
    /// Tokens the model read: Σ sequence lengths (plain), Σ packed lengths (prefix: each
    /// document's context once plus its continuations without their last tokens).
    public var tokens: Int
    /// Tokens lm-eval would feed for the same requests: Σ (sequence length − 1).
    public var requestTokens: Int
    public var seconds: Double
}

/// The scoring engine: answers `ScoreRequest`s with a `TokenScorer`, scheduling them for speed
/// and returning results in the original order.
///
/// Plain requests are sorted by length (longest first, as lm-eval does, so memory peaks early
/// and the ETA is honest) and packed into batches under `batchTokens`. With `kvReuse`, requests
/// of the same group (document) whose scored part follows the same prefix tokens become one
/// prefix group, and groups go to the model many at a time through `score(prefixGroups:)`; by
/// the `TokenScorer` contract both paths give the same numbers.
public final class Scorer {
    public let model: TokenScorer
    public let options: ScorerOptions
    /// Every model call made so far, in order.
    public private(set) var timings: [BatchTiming] = []

    public init(model: TokenScorer, options: ScorerOptions = ScorerOptions()) {
        self.model = model
        self.options = options
    }

    /// A unit of scheduled work.
    enum Job {
        case plain([Int])                                // request indices, longest first
        case prefix([(prefix: [Int], members: [Int])])   // documents: shared prefix tokens, request indices
    }

    /// Scores `requests`; `groups[i]` is the document of request i (prefix sharing never
    /// crosses documents). `done` is called with the indices each model call completed.
    public func score(_ requests: [ScoreRequest], groups: [Int]? = nil,
                      done: (([Int]) -> Void)? = nil) throws -> [ScoreResult] {
        for (i, r) in requests.enumerated() where r.scoreFrom < 1 || r.scoreFrom > r.tokens.count {
            throw InputError("request \(i)", "scoreFrom \(r.scoreFrom) outside 1...\(r.tokens.count)")
        }
        // A window of L inputs is L + 1 tokens (the last is only a target). A model that
        // counts the target against its positions cannot take it: say which flag fixes that.
        if let long = requests.map(\.tokens.count).max(), long > model.maxLength + 1 {
            throw InputError("--max-length", "a sequence of \(long) tokens exceeds the model's \(model.maxLength) positions; use --max-length \(model.maxLength) or less")
        }
        var results = [ScoreResult?](repeating: nil, count: requests.count)
        for job in plan(requests, groups: groups) {
            let start = DispatchTime.now().uptimeNanoseconds
            let indices: [Int]
            let answered: [ScoreResult]
            let timing: BatchTiming
            switch job {
            case let .plain(members):
                indices = members
                answered = try model.score(members.map { requests[$0] })
                let tokens = members.reduce(0) { $0 + requests[$1].tokens.count }
                timing = BatchTiming(kind: .plain, requests: members.count, tokens: tokens,
                                     requestTokens: tokens - members.count, seconds: 0)
            case let .prefix(groups):
                indices = groups.flatMap(\.members)
                let packed = groups.map { g in
                    PrefixGroup(prefix: g.prefix, continuations: g.members.map { Array(requests[$0].tokens[g.prefix.count...]) })
                }
                answered = try model.score(prefixGroups: packed).flatMap { $0 }
                let seq = indices.reduce(0) { $0 + requests[$1].tokens.count - 1 }
                timing = BatchTiming(kind: .prefix, requests: indices.count,
                                     tokens: packed.reduce(0) { $0 + $1.packedLength },
                                     requestTokens: seq, seconds: 0)
            }
            guard answered.count == indices.count else {
                throw InputError("model", "answered \(answered.count) of \(indices.count) requests")
            }
            for (k, i) in indices.enumerated() {
                let expected = requests[i].tokens.count - requests[i].scoreFrom
                guard answered[k].logprobs.count == expected else {
                    throw InputError("model", "returned \(answered[k].logprobs.count) log-probabilities for a request scoring \(expected) tokens")
                }
                results[i] = answered[k]
            }
            var t = timing
            t.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            timings.append(t)
            done?(indices)
        }
        return results.map { $0 ?? ScoreResult(logprobs: [], greedy: []) }
    }

    /// The jobs for `requests`: prefix groups (with `kvReuse`), then plain batches, each kind
    /// longest first.
    func plan(_ requests: [ScoreRequest], groups: [Int]?) -> [Job] {
        var plainIndices: [Int] = []
        var prefixJobs: [(prefix: [Int], members: [Int], length: Int)] = []
        if options.kvReuse, let groups {
            // Requests of one document keyed by their prefix tokens, in first-seen order.
            var byGroup: [Int: [[Int]: [Int]]] = [:]
            var order: [(Int, [Int])] = []
            for i in requests.indices {
                let key = Array(requests[i].tokens[..<requests[i].scoreFrom])
                let g = i < groups.count ? groups[i] : -1 - i
                if byGroup[g, default: [:]][key] == nil { order.append((g, key)) }
                byGroup[g, default: [:]][key, default: []].append(i)
            }
            for (g, key) in order {
                let members = byGroup[g]?[key] ?? []
                if members.count >= 2 {
                    let length = key.count + members.reduce(0) { $0 + max(requests[$1].tokens.count - key.count - 1, 0) }
                    prefixJobs.append((key, members, length))
                } else {
                    plainIndices += members
                }
            }
        } else {
            plainIndices = Array(requests.indices)
        }
        // Documents longest first, cut into calls of at most `batchTokens` packed tokens where
        // padding plus per-call overhead is least (BatchPlan).
        prefixJobs.sort { $0.length > $1.length }
        var jobs: [Job] = []
        for r in BatchPlan.cuts(prefixJobs.map(\.length), budget: options.batchTokens) {
            jobs.append(.prefix(prefixJobs[r].map { ($0.prefix, $0.members) }))
        }

        // Longest first; ties keep request order so runs are reproducible.
        plainIndices.sort { (requests[$0].tokens.count, -$0) > (requests[$1].tokens.count, -$1) }
        for r in BatchPlan.cuts(plainIndices.map { requests[$0].tokens.count }, budget: options.batchTokens) {
            jobs.append(.plain(Array(plainIndices[r])))
        }
        return jobs
    }
}
