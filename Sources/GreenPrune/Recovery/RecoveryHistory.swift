import Foundation

/// What a recovery run did, step by step: the loss and validation-loss curves, tokens and time
/// (recovery.json's `history`; a checkpoint carries it so a resumed run's curves are whole).
public struct RecoveryHistory: Codable, Equatable, Sendable {
    /// One optimizer step.
    public struct Step: Codable, Equatable, Sendable {
        /// 1-based step number.
        public var step: Int
        /// Mean token loss of the step's batch (before the update).
        public var loss: Double
        /// Targets counted in the batch.
        public var tokens: Int
        /// Learning rate of the update.
        public var learningRate: Double
        /// Global gradient norm before clipping.
        public var gradNorm: Double
    }
    /// One validation pass.
    public struct Validation: Codable, Equatable, Sendable {
        /// Optimizer steps done when it was taken.
        public var step: Int
        /// Mean token loss over the held-out examples.
        public var loss: Double
        /// Targets counted.
        public var tokens: Int
    }

    public var steps: [Step] = []
    public var validation: [Validation] = []
    /// Targets trained on, all steps together.
    public var tokens: Int = 0
    /// Wall seconds spent in training steps and validation (summed across resumed runs).
    public var seconds: Double = 0

    public init() {}
}
