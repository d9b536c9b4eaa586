/// One sequence to score: ln p(tokens[t] | tokens[..<t]) for every t in `scoreFrom ..< tokens.count`.
public struct ScoreRequest: Sendable, Equatable {
    public var tokens: [Int]
    /// First scored position (≥ 1: position 0 has no context).
    public var scoreFrom: Int
    public init(tokens: [Int], scoreFrom: Int) {
        self.tokens = tokens
        self.scoreFrom = scoreFrom
    }
}

/// Log-probabilities of the scored tokens, in order, and whether each was the argmax.
public struct ScoreResult: Sendable, Equatable {
    public var logprobs: [Float]
    public var greedy: [Bool]
    public init(logprobs: [Float], greedy: [Bool]) {
        self.logprobs = logprobs
        self.greedy = greedy
    }
    /// Σ ln p over the scored tokens.
    public var sum: Double { logprobs.reduce(0.0) { $0 + Double($1) } }
    /// True when every scored token was the greedy choice.
    public var allGreedy: Bool { greedy.allSatisfy { $0 } }
}

/// A causal language model as the evaluation engine, pruning and quantization see it.
///
/// Implementations compute the output layer only at the positions that are scored.
public protocol TokenScorer: AnyObject {
    /// Longest sequence the model takes (`max_position_embeddings`).
    var maxLength: Int { get }
    /// Vocabulary size of the output layer.
    var vocabularySize: Int { get }
    /// Scores a batch of requests; results are in request order.
    func score(_ batch: [ScoreRequest]) throws -> [ScoreResult]
    /// Scores `continuations` that all follow `prefix` (a multiple-choice document): the
    /// prefix is run once and its keys/values reused. Result i scores every token of
    /// continuation i (its first token given the prefix). Must equal
    /// `score([ScoreRequest(tokens: prefix + c, scoreFrom: prefix.count)])` within float error.
    func score(prefix: [Int], continuations: [[Int]]) throws -> [ScoreResult]
    /// Many documents' (prefix, continuations) at once; result g is what
    /// `score(prefix: groups[g].prefix, continuations: groups[g].continuations)` returns.
    /// Models override this to batch documents together (shared-prefix packing).
    func score(prefixGroups groups: [PrefixGroup]) throws -> [[ScoreResult]]
}

/// Continuations that share one prefix (the choices of a multiple-choice document).
public struct PrefixGroup: Sendable, Equatable {
    public var prefix: [Int]
    public var continuations: [[Int]]
    public init(prefix: [Int], continuations: [[Int]]) {
        self.prefix = prefix
        self.continuations = continuations
    }
    /// Tokens a packed row holds: the prefix, then every continuation but its last token.
    public var packedLength: Int { prefix.count + continuations.reduce(0) { $0 + max($1.count - 1, 0) } }
}

extension TokenScorer {
    /// The plain path: one request per continuation. Models override this with KV reuse.
    public func score(prefix: [Int], continuations: [[Int]]) throws -> [ScoreResult] {
        try score(continuations.map { ScoreRequest(tokens: prefix + $0, scoreFrom: prefix.count) })
    }

    /// One `score(prefix:continuations:)` call per group.
    public func score(prefixGroups groups: [PrefixGroup]) throws -> [[ScoreResult]] {
        try groups.map { try score(prefix: $0.prefix, continuations: $0.continuations) }
    }
}

/// A sentence encoder (BERT + pooling) as `stsb` and `embedding_drift` see it.
public protocol SentenceEncoder: AnyObject {
    /// Embedding width.
    var dimension: Int { get }
    /// L2-normalised mean-pooled embeddings, one per text.
    func embed(_ texts: [String]) throws -> [[Float]]
    /// Tokens `embed` reads for `texts` (special tokens included), for throughput figures;
    /// 0 where the encoder cannot tell.
    func tokenCount(_ texts: [String]) -> Int
}

extension SentenceEncoder {
    public func tokenCount(_ texts: [String]) -> Int { 0 }
}
