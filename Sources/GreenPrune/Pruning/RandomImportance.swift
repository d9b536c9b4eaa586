import Foundation

/// Random importance: uniform scores in [0, 1) from a generator seeded by `seed` and the
/// weight's name, so a run is reproducible and independent of the order weights are visited.
public struct RandomImportance: ImportanceEstimator {
    public var seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    public func channelScores(name: String, weight: any LinearLayer, gradients: WeightGradients?, axis: GroupAxis) throws -> [Double] {
        // FNV-1a of the name and axis, mixed into the seed.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in (name + "#" + axis.rawValue).utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        var rng = SplitMix64(seed: seed ^ h)
        let n = axis == .row ? weight.outFeatures : weight.inFeatures
        return (0..<n).map { _ in Double(rng.next() >> 11) * 0x1p-53 }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small seeded generator with a fixed sequence.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
