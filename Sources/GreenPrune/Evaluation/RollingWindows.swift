/// lm-eval's rolling windows for `loglikelihood_rolling`: every token of a text is predicted
/// exactly once, in windows of at most `maxLength` input tokens.
///
/// With `contextLength` = 1 (what lm-eval's Hugging Face backend uses) and L = `maxLength`:
/// - window 0 reads `[prefix] + t[0 ..< n0-1]` and predicts `t[0 ..< n0]`, n0 = min(L, count);
/// - each following window predicts the next p ≤ L tokens `t[e-p ..< e]` (e = window end) and
///   reads `t[e-L-1 ..< e-1]`, i.e. exactly L inputs: a full window has one token of extra
///   context, the last partial window is extended back to L inputs.
/// `makeDisjoint` then splits each (input, target) pair into a context that does not overlap
/// the targets: `context = input[..< input.count - (target.count - 1)]`, continuation = target.
public enum RollingWindows {
    /// One (input, target) pair of `get_rolling_token_windows`: `input.count == target.count`,
    /// and `input[i]` is the token just before `target[i]`.
    public struct Window: Equatable, Sendable {
        public var input: [Int]
        public var target: [Int]
    }

    /// lm-eval's `get_rolling_token_windows(token_list, prefix_token, max_seq_len, context_len)`.
    /// Empty for an empty token list. Requires 1 ≤ contextLength ≤ maxLength.
    public static func tokenWindows(tokens: [Int], prefixToken: Int, maxLength: Int, contextLength: Int = 1) -> [Window] {
        precondition(1 <= contextLength && contextLength <= maxLength, "need 1 ≤ context_len ≤ max_seq_len")
        guard !tokens.isEmpty else { return [] }
        let predictionLength = maxLength - contextLength + 1
        let firstLength = min(maxLength, tokens.count)
        var windows = [Window(input: [prefixToken] + tokens[0 ..< firstLength - 1], target: Array(tokens[0 ..< firstLength]))]
        var predicted = firstLength
        while predicted < tokens.count {
            let count = min(tokens.count - predicted, predictionLength)
            let end = predicted + count
            // end > maxLength here (predicted ≥ firstLength = maxLength), so the start is ≥ 0.
            windows.append(Window(input: Array(tokens[(end - maxLength - 1) ..< (end - 1)]),
                                  target: Array(tokens[(end - count) ..< end])))
            predicted += count
        }
        return windows
    }

    /// lm-eval's `make_disjoint_window`: the input minus the part the targets cover.
    public static func makeDisjoint(_ w: Window) -> (context: [Int], continuation: [Int]) {
        (Array(w.input.prefix(w.input.count - (w.target.count - 1))), w.target)
    }

    /// The (context, continuation) pairs a rolling request scores: windows with context length 1,
    /// made disjoint.
    public static func windows(tokens: [Int], prefixToken: Int, maxLength: Int) -> [(context: [Int], continuation: [Int])] {
        tokenWindows(tokens: tokens, prefixToken: prefixToken, maxLength: maxLength, contextLength: 1).map(makeDisjoint)
    }
}
