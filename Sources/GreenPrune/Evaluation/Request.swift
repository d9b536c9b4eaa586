import Foundation

/// One question a task asks the model, as data (lm-eval's `Instance`): the two request kinds
/// that log-likelihood evaluation needs.
public enum Request: Sendable, Equatable {
    /// Σ ln p(continuation | context) over the continuation's tokens, and whether every
    /// continuation token was the greedy argmax.
    case loglikelihood(context: String, continuation: String)
    /// Σ ln p of every token of `text`, each predicted exactly once (see `RollingWindows`).
    case loglikelihoodRolling(text: String)
    /// Σ ln p(tokens[t] | tokens[..<t]) for t ≥ 1 over an already tokenized window (the
    /// LLM-Pruner perplexity protocol, which tokenizes the corpus once).
    case tokenWindow(tokens: [Int])

    /// The request's arguments in the order lm-eval logs them (`arg_0`, `arg_1`).
    public var arguments: [String] {
        switch self {
        case let .loglikelihood(context, continuation): return [context, continuation]
        case let .loglikelihoodRolling(text): return [text]
        case let .tokenWindow(tokens): return [tokens.map(String.init).joined(separator: " ")]
        }
    }

    /// lm-eval's name of the request kind.
    public var kindName: String {
        switch self {
        case .loglikelihood: return "loglikelihood"
        case .loglikelihoodRolling: return "loglikelihood_rolling"
        case .tokenWindow: return "loglikelihood_tokens"
        }
    }
}

/// The answer to one request: the summed log-likelihood and the all-greedy flag.
public struct Answer: Sendable, Equatable {
    public var loglikelihood: Double
    public var isGreedy: Bool
    /// Tokens the log-likelihood sums over.
    public var tokenCount: Int
    public init(loglikelihood: Double, isGreedy: Bool, tokenCount: Int) {
        self.loglikelihood = loglikelihood
        self.isGreedy = isGreedy
        self.tokenCount = tokenCount
    }
}

/// Turns requests into token sequences for a `TokenScorer`, as lm-eval's Hugging Face backend does.
///
/// - `loglikelihood`: `_encode_pair` — the context's trailing whitespace (everything `rstrip`
///   removes) moves to the front of the continuation; `whole = encode(context + continuation)`,
///   `ctx = encode(context)`, continuation tokens = `whole[ctx.count...]`. An empty context is
///   replaced by the prefix token (BOS, else EOS) and the continuation encoded alone.
/// - `loglikelihood_rolling`: the text's tokens in disjoint windows (`RollingWindows`).
/// - Sequences longer than `maxLength + 1` keep their last `maxLength + 1` tokens (lm-eval's
///   left truncation `(ctx + cont)[-(max_length+1):]`): the model reads at most `maxLength`.
///   Only context is ever dropped: a continuation longer than `maxLength` would lose scored
///   tokens while the metric still counts them (its words, bytes or token weight), so it is an
///   error, and so is a `tokenWindow` (`--seq-len`) longer than the model's positions. Texts of
///   any length go through `loglikelihood_rolling`, whose windows always fit.
///
/// Special tokens are added only when the tokenizer adds a BOS by default (`add_bos_token`).
public struct RequestEncoder {
    public let tokenizer: Tokenizer
    /// Longest input the model reads (`max_position_embeddings` or `--max-length`).
    public let maxLength: Int

    public init(tokenizer: Tokenizer, maxLength: Int) {
        self.tokenizer = tokenizer
        self.maxLength = maxLength
    }

    /// BOS, else EOS: what lm-eval's `prefix_token_id` reads before an empty context.
    public func prefixToken() throws -> Int {
        guard let t = tokenizer.bosTokenId ?? tokenizer.eosTokenId else {
            throw InputError("tokenizer", "has neither a BOS nor an EOS token to stand for an empty context")
        }
        return t
    }

    /// Token ids of `text` with the tokenizer's default special tokens (lm-eval's `tok_encode`).
    public func encode(_ text: String) throws -> [Int] {
        try tokenizer.encode(text, addSpecialTokens: tokenizer.addsBosByDefault)
    }

    /// lm-eval's `_encode_pair`: (context tokens, continuation tokens).
    public func encodePair(context: String, continuation: String) throws -> (context: [Int], continuation: [Int]) {
        if context.isEmpty {
            return ([try prefixToken()], try encode(continuation))
        }
        let (ctx, cont) = RequestEncoder.moveTrailingWhitespace(context: context, continuation: continuation)
        let whole = try encode(ctx + cont)
        let ctxTokens = try encode(ctx)
        let split = min(ctxTokens.count, whole.count)
        return (ctxTokens, Array(whole[split...]))
    }

    /// The context without its trailing whitespace, and the continuation with it in front.
    /// Whitespace is Python's `str.isspace` set (what `rstrip()` removes).
    public static func moveTrailingWhitespace(context: String, continuation: String) -> (String, String) {
        let scalars = Array(context.unicodeScalars)
        var end = scalars.count
        while end > 0, TextStatistics.isPythonSpace(scalars[end - 1]) { end -= 1 }
        if end == scalars.count { return (context, continuation) }
        var head = String.UnicodeScalarView(); head.append(contentsOf: scalars[..<end])
        var tail = String.UnicodeScalarView(); tail.append(contentsOf: scalars[end...])
        return (String(head), String(tail) + continuation)
    }

    /// The scorer inputs of one request: one sequence for `loglikelihood`, one per window for
    /// `loglikelihood_rolling` (whose answer is the sum over its windows).
    public func encode(_ request: Request) throws -> [ScoreRequest] {
        switch request {
        case let .loglikelihood(context, continuation):
            let (ctx, cont) = try encodePair(context: context, continuation: continuation)
            guard cont.count <= maxLength else {
                throw InputError("--max-length", "a continuation of \(cont.count) tokens does not fit the model's \(maxLength) positions (max_position_embeddings or --max-length), so part of it could not be scored")
            }
            return [truncated(context: ctx, continuation: cont)]
        case let .loglikelihoodRolling(text):
            let tokens = try encode(text)
            return RollingWindows.windows(tokens: tokens, prefixToken: try prefixToken(), maxLength: maxLength)
                .map { truncated(context: $0.context, continuation: $0.continuation) }
        case let .tokenWindow(tokens):
            guard tokens.count >= 2 else { return [] }
            // The protocol feeds the whole window to the model (seq_len positions).
            guard tokens.count <= maxLength else {
                throw InputError("--seq-len", "\(tokens.count) exceeds the model's context of \(maxLength) positions (max_position_embeddings or --max-length); use --seq-len \(maxLength) or less")
            }
            return [truncated(context: [tokens[0]], continuation: Array(tokens[1...]))]
        }
    }

    /// `context + continuation` scored from the continuation, left-truncated to `maxLength + 1`.
    /// A continuation longer than that loses its first tokens' scores, as in lm-eval.
    public func truncated(context: [Int], continuation: [Int]) -> ScoreRequest {
        var tokens = context + continuation
        var from = context.count
        let keep = maxLength + 1
        if tokens.count > keep {
            let drop = tokens.count - keep
            tokens.removeFirst(drop)
            from = max(from - drop, 1)
        }
        return ScoreRequest(tokens: tokens, scoreFrom: max(from, 1))
    }
}
