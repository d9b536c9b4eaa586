import Foundation

/// The learning rate at each optimizer step: linear warm-up from 0, then constant, linear decay
/// to 0, or half a cosine to 0, as Hugging Face's `get_{constant,linear,cosine}_schedule_with_warmup`.
///
/// The factor is taken at the number of optimizer steps already done (0 for the first update),
/// as the Trainer does, so with warm-up the very first update has learning rate 0.
public struct LearningRateSchedule: Equatable, Sendable {
    /// How the rate falls after warm-up.
    public enum Decay: String, CaseIterable, Sendable {
        case constant, linear, cosine
    }

    /// The peak rate.
    public var peak: Double
    /// Steps of linear warm-up.
    public var warmupSteps: Int
    /// Optimizer steps in the whole run (the decay reaches 0 there).
    public var totalSteps: Int
    public var decay: Decay

    public init(peak: Double, warmupSteps: Int, totalSteps: Int, decay: Decay) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.decay = decay
    }

    /// The rate of the update made after `done` optimizer steps.
    public func rate(afterSteps done: Int) -> Double {
        let w = Double(warmupSteps), s = Double(done), n = Double(totalSteps)
        if done < warmupSteps { return peak * s / max(1, w) }
        switch decay {
        case .constant:
            return peak
        case .linear:
            return peak * max(0, (n - s) / max(1, n - w))
        case .cosine:
            let progress = (s - w) / max(1, n - w)
            return peak * max(0, 0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}
