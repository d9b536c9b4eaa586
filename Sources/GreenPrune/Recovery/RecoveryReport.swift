import Foundation

/// recovery.json: what was trained (LoRA settings, options, data), how it went (loss and
/// validation-loss curves, tokens, steps, seconds, why it stopped) and, under a tracker, the
/// energy it took.
public enum RecoveryReport {
    /// The report of `trainer` after a run that ended for `stop`. `data` describes the training
    /// file; `energy` is the tracker's report as JSON (nil when not metered).
    public static func make(_ trainer: RecoveryTrainer, stop: RecoveryTrainer.Stop, sourceModel: String,
                            data: [String: Any], energy: Any?) -> [String: Any] {
        let s = trainer.adapters.settings, h = trainer.history, o = trainer.options
        let options: [String: Any] = [
            "learning_rate": o.learningRate, "warmup_steps": o.warmupSteps, "schedule": o.decay,
            "weight_decay": o.weightDecay, "max_grad_norm": o.maxGradNorm ?? NSNull(),
            "adam_beta1": o.beta1, "adam_beta2": o.beta2, "adam_epsilon": o.epsilon,
            "batch_size": o.batchSize, "micro_batch": o.microBatch, "epochs": o.epochs,
            "max_steps": o.maxSteps ?? NSNull(), "max_minutes": o.maxMinutes ?? NSNull(),
            "eval_every": o.evalEvery ?? NSNull(), "checkpoint_every": o.checkpointEvery ?? NSNull(), "seed": o.seed,
        ]
        return [
            "greenprune_version": GreenPruneInfo.version,
            "source_model": sourceModel,
            "lora": ["r": s.rank, "lora_alpha": Double(s.alpha), "lora_dropout": Double(s.dropout),
                     "target_modules": s.targets.map(LoRASettings.peftModuleName),
                     "trainable_parameters": trainer.adapters.parameterCount] as [String: Any],
            "training": options,
            "data": data.merging(["train_examples": trainer.train.count, "validation_examples": trainer.validation.count,
                                  "train_fingerprint": TrainingOrder.fingerprint(trainer.train)]) { $1 },
            "steps": trainer.step,
            "planned_steps": trainer.totalSteps,
            "stopped": stop.rawValue,
            "tokens": h.tokens,
            "seconds": h.seconds,
            "tokens_per_second": h.seconds > 0 ? Double(h.tokens) / h.seconds : 0,
            "loss": h.steps.map { ["step": $0.step, "loss": $0.loss, "tokens": $0.tokens,
                                   "learning_rate": $0.learningRate, "grad_norm": $0.gradNorm] as [String: Any] },
            "validation_loss": h.validation.map { ["step": $0.step, "loss": $0.loss, "tokens": $0.tokens] as [String: Any] },
            "energy": energy ?? NSNull(),
        ]
    }
}
