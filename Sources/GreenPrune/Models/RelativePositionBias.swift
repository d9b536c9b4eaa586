import Foundation

/// The bucket of a relative position `relative` = key position − query position, bidirectional
/// T5-style as MPNet uses it (transformers' `MPNetEncoder.relative_position_bucket`):
///
///   half = buckets / 2; n = query − key; the bucket starts at half when n < 0 (the key comes
///   after the query), then adds |n| when |n| < half/2 (exact buckets), else
///   half/2 + ⌊ln(|n| / (half/2)) / ln(maxDistance / (half/2)) · (half − half/2)⌋, at most half − 1
///   (logarithmic buckets up to `maxDistance`, everything farther shares the last one).
///
/// `buckets` is even and ≥ 4 (`ModelConfig.bert` checks it). The logarithm runs in double
/// precision so that the edges where the quotient is an integer (distance 16, 32, 64 with 32
/// buckets) land on their exact bucket rather than one below.
@inlinable
public func relativePositionBucket(_ relative: Int, buckets: Int, maxDistance: Int = mpnetMaxRelativeDistance) -> Int {
    let half = buckets / 2
    let n = -relative
    let base = n < 0 ? half : 0
    let a = abs(n), exact = half / 2
    if a < exact { return base + a }
    let ratio = log(Double(a) / Double(exact)) / log(Double(maxDistance) / Double(exact))
    let large = exact + Int(ratio * Double(half - exact))
    return base + min(large, half - 1)
}

/// The distance MPNet's logarithmic buckets reach (fixed in transformers' MPNet).
public let mpnetMaxRelativeDistance = 128

/// out (H, T, T) = table[bucket(j − i)][h] for query i and key j: MPNet's attention-score bias,
/// the same for every sequence of a batch and every layer, so it is computed once per forward
/// (transformers' `compute_position_bias` without position ids: positions 0..<T, padding
/// included, whose keys the attention mask removes anyway). `table` is (buckets, H) as stored
/// (`encoder.relative_attention_bias.weight`).
public func relativePositionBiasForward(_ out: UnsafeMutablePointer<Float>, table: UnsafePointer<Float>,
                                        t: Int, heads: Int, buckets: Int) {
    // One bucket per distance −(T−1)…T−1, then rows copied from it.
    let bucketOf = (0 ..< (2 * t - 1)).map { relativePositionBucket($0 - (t - 1), buckets: buckets) }
    for h in 0 ..< heads {
        for i in 0 ..< t {
            let row = out + (h * t + i) * t
            for j in 0 ..< t { row[j] = table[bucketOf[j - i + t - 1] * heads + h] }
        }
    }
}
