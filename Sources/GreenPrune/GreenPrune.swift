/// GreenPrune's core library: model formats, tokenizers, forward/backward passes, pruning,
/// quantization, evaluation, energy metering and reporting. See docs/ARCHITECTURE.md.
public enum GreenPruneInfo {
    /// The toolkit's version, written into results and emissions files.
    public static let version = "0.1.0"
}
