import Foundation

/// The deterministic order of a run's examples: which are held out, and which examples make up
/// each optimizer step, as pure functions of the seed, so that a resumed run needs only the step
/// number to know where it is in the data.
public enum TrainingOrder {
    /// A Fisher–Yates permutation of 0..<n from SplitMix64(seed), written out here rather than
    /// taken from the standard library so the order cannot change with the toolchain.
    public static func permutation(_ n: Int, seed: UInt64) -> [Int] {
        var p = Array(0 ..< n)
        var rng = SplitMix64(seed: seed)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                p.swapAt(i, j)
            }
        }
        return p
    }

    /// The examples shuffled by `seed`, the first `validationSize` held out (as the
    /// `train_test_split(shuffle=True)` of LLM-Pruner's recovery), the rest in file order.
    public static func split(_ examples: [TrainingExample], validationSize: Int, seed: UInt64) throws
        -> (train: [TrainingExample], validation: [TrainingExample]) {
        guard validationSize >= 0 else { throw InputError("--val-size", "\(validationSize) must be ≥ 0") }
        guard validationSize < examples.count else {
            throw InputError("--val-size", "\(validationSize) leaves nothing to train on: the data has \(examples.count) usable examples")
        }
        let p = permutation(examples.count, seed: mix64(seed ^ 0x5641_4c49_4400))
        let held = Set(p.prefix(validationSize))
        return (examples.indices.filter { !held.contains($0) }.map { examples[$0] },
                p.prefix(validationSize).map { examples[$0] })
    }

    /// The training examples' order in `epoch` (0-based): a fresh permutation per epoch.
    public static func epochOrder(count n: Int, epoch: Int, seed: UInt64) -> [Int] {
        permutation(n, seed: mix64(seed &+ 0x4550_4f43_4800 &+ UInt64(epoch)))
    }

    /// `rows` right-padded with token 0 to the longest one, the padding never a target: with
    /// causal attention the padding after a row's end changes none of its logits.
    public static func padded(_ rows: [TrainingExample]) -> (tokens: [[Int]], mask: [[Bool]]) {
        let t = rows.map(\.tokens.count).max() ?? 0
        return (rows.map { $0.tokens + Array(repeating: 0, count: t - $0.tokens.count) },
                rows.map { $0.mask + Array(repeating: false, count: t - $0.mask.count) })
    }

    /// FNV-1a 64-bit of every example's tokens and mask, in order, as hex: a checkpoint records
    /// it so that a resume on other data is refused.
    public static func fingerprint(_ examples: [TrainingExample]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func eat(_ v: UInt64) { for s in stride(from: 0, to: 64, by: 8) { h = (h ^ ((v >> UInt64(s)) & 0xff)) &* 0x0000_0100_0000_01b3 } }
        for e in examples {
            eat(UInt64(e.tokens.count))
            for (t, m) in zip(e.tokens, e.mask) { eat(UInt64(truncatingIfNeeded: t) << 1 | (m ? 1 : 0)) }
        }
        return String(format: "%016llx", h)
    }
}
