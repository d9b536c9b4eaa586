import Foundation

/// Keys and values of past positions for every layer, so new tokens attend to them without
/// recomputing them. Layer l holds k, v (B, S, G_l·D): sequence b's position p at row b·S + p.
///
/// `length` positions are filled, the same number for every sequence: steps before the last
/// must not be padded (a shared prefix, or greedy generation one token at a time).
public final class LlamaKVCache {
    /// Sequences.
    public let batch: Int
    /// Positions each sequence can hold (S).
    public let capacity: Int
    /// Width G_l·D of each layer's keys/values.
    public let widths: [Int]
    /// Filled positions.
    public internal(set) var length = 0
    var keys: [UnsafeMutablePointer<Float>]
    var values: [UnsafeMutablePointer<Float>]

    /// A cache for `batch` sequences of up to `capacity` positions of a model with `widths[l]`
    /// key/value floats per position in layer l.
    public init(batch: Int, capacity: Int, widths: [Int]) {
        self.batch = batch
        self.capacity = capacity
        self.widths = widths
        keys = widths.map { w in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch * capacity * w))
            p.initialize(repeating: 0, count: max(1, batch * capacity * w))
            return p
        }
        values = widths.map { w in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch * capacity * w))
            p.initialize(repeating: 0, count: max(1, batch * capacity * w))
            return p
        }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Bytes held.
    public var byteCount: Int { 2 * widths.reduce(0, +) * batch * capacity * 4 }

    /// Writes layer `l`'s new keys `k` and values `v` (B, T, G_l·D) at positions
    /// length..<length+T of every sequence and returns the layer's whole keys and values (B, S,
    /// G_l·D) for attention; `length` itself moves once every layer has run (`forward`).
    func store(layer l: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>,
               batch b: Int, time t: Int) -> (keys: UnsafePointer<Float>, values: UnsafePointer<Float>) {
        let kc = keys[l], vc = values[l], w = widths[l]
        for bi in 0..<b {
            (kc + (bi * capacity + length) * w).update(from: k + bi * t * w, count: t * w)
            (vc + (bi * capacity + length) * w).update(from: v + bi * t * w, count: t * w)
        }
        return (UnsafePointer(kc), UnsafePointer(vc))
    }

    /// Copies the first `length` positions of `source`'s sequence 0 into every sequence of
    /// this cache (a prefix run once, then shared by several continuations).
    public func fill(fromFirstSequenceOf source: LlamaKVCache) {
        precondition(source.widths == widths && source.length <= capacity)
        let n = source.length
        for l in widths.indices {
            let w = widths[l]
            for b in 0..<batch {
                (keys[l] + b * capacity * w).update(from: source.keys[l], count: n * w)
                (values[l] + b * capacity * w).update(from: source.values[l], count: n * w)
            }
        }
        length = n
    }
}
