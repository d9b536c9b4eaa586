import Foundation

/// Which projections get adapters and of what shape: LLM-Pruner's recovery defaults (rank 8,
/// alpha 16, dropout 0.05 on q, k, v, o, gate, up, down).
public struct LoRASettings: Equatable, Sendable {
    /// Rank R of every adapter.
    public var rank: Int
    /// alpha: the adapters' output is scaled by alpha / R.
    public var alpha: Float
    /// Dropout probability on each adapter's input while training.
    public var dropout: Float
    /// The projections adapted in every layer, in `LlamaProjection.allCases` order.
    public var targets: [LlamaProjection]

    public init(rank: Int = 8, alpha: Float = 16, dropout: Float = 0.05, targets: [LlamaProjection] = LlamaProjection.allCases) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targets = LlamaProjection.allCases.filter(targets.contains)
    }

    /// The short name of a projection on the command line (`q`, `gate`…).
    public static func shortName(_ p: LlamaProjection) -> String {
        switch p {
        case .q: return "q"
        case .k: return "k"
        case .v: return "v"
        case .o: return "o"
        case .gate: return "gate"
        case .up: return "up"
        case .down: return "down"
        }
    }

    /// PEFT's `target_modules` entry of a projection: the module's last name (`q_proj`).
    public static func peftModuleName(_ p: LlamaProjection) -> String {
        String(p.module.split(separator: ".").last ?? Substring(p.module))
    }

    /// Projections from a comma-separated list of short names (`q,v`) or PEFT module names
    /// (`q_proj,v_proj`); `flag` names the source in the error.
    public static func parseTargets(_ list: String, flag: String = "--target") throws -> [LlamaProjection] {
        var out: [LlamaProjection] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false) {
            let name = item.trimmingCharacters(in: .whitespaces)
            guard let p = LlamaProjection.allCases.first(where: { shortName($0) == name || peftModuleName($0) == name }) else {
                let known = LlamaProjection.allCases.map(shortName).joined(separator: ",")
                throw InputError(flag, "'\(name)' is not a projection (known: \(known))")
            }
            if !out.contains(p) { out.append(p) }
        }
        guard !out.isEmpty else { throw InputError(flag, "names no projection") }
        return LlamaProjection.allCases.filter(out.contains)
    }

    /// Throws a one-line error for an impossible setting.
    public func validate() throws {
        guard rank >= 1 else { throw InputError("--rank", "\(rank) must be at least 1") }
        guard alpha.isFinite, alpha > 0 else { throw InputError("--alpha", "\(alpha) must be a positive number") }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else { throw InputError("--dropout", "\(dropout) must be in [0, 1)") }
        guard !targets.isEmpty else { throw InputError("--target", "names no projection") }
    }
}
