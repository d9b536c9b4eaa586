import Foundation

/// A recovery run's checkpoint: a directory holding `adapters.safetensors` (every A and B under
/// PEFT's names, with AdamW's moments beside them as `….exp_avg` / `….exp_avg_sq`) and
/// `state.json` (step, optimizer step, options, LoRA settings, the type the frozen weights were
/// held in, data fingerprints, data position, history). Written under a temporary name and renamed into place, so a kill leaves the previous
/// checkpoint or the new one, never half of one.
///
/// The seed and the step number are the run's whole random state (dropout masks and data order
/// are functions of them), so restoring the tensors and the step continues the run bit for bit.
public enum RecoveryCheckpoint {
    /// state.json's schema.
    struct State: Codable, Equatable {
        var format = "greenprune-recovery-checkpoint"
        var version = 1
        var step: Int
        var optimizerStep: Int
        var options: TrainingOptions
        var rank: Int
        var alpha: Float
        var dropout: Float
        var targets: [String]
        var layers: Int
        /// The storage type of the frozen weights while training (`--dtype` resolved against the
        /// checkpoint: F32, BF16, F16); a bf16 forward gives other gradients than a float32 one, so a
        /// resume must hold them alike. Absent in checkpoints written before it was recorded.
        var weights: DType?
        var trainFingerprint: String
        var validationFingerprint: String
        /// Epoch and offset of the next step's first example (for a reader; the step implies it).
        var nextEpoch: Int
        var nextOffset: Int
        var history: RecoveryHistory
    }

    static let tensorsFile = "adapters.safetensors"
    static let stateFile = "state.json"

    private static func state(of t: RecoveryTrainer, weights: DType) -> State {
        let s = t.adapters.settings
        let next = t.dataPosition(step: t.step)
        return State(step: t.step, optimizerStep: t.optimizer.step, options: t.options, rank: s.rank, alpha: s.alpha,
                     dropout: s.dropout, targets: s.targets.map(LoRASettings.peftModuleName),
                     layers: (t.adapters.entries.map(\.site.layer).max() ?? -1) + 1, weights: weights,
                     trainFingerprint: TrainingOrder.fingerprint(t.train),
                     validationFingerprint: TrainingOrder.fingerprint(t.validation),
                     nextEpoch: next.epoch, nextOffset: next.offset, history: t.history)
    }

    /// Writes `trainer`'s state to the directory `url`, replacing the previous checkpoint there;
    /// `weights` is the type its model's frozen weights are held in.
    public static func write(_ trainer: RecoveryTrainer, weights: DType = .f32, to url: URL) throws {
        let fm = FileManager.default
        let tmp = AtomicFile.temporarySibling(of: url)
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            var entries: [SafeTensorsEntry] = []
            for (n, e) in trainer.adapters.entries.enumerated() {
                let l = e.layer
                let shapes = [(e.site.peftA, [l.rank, l.inFeatures], l.a, 2 * n), (e.site.peftB, [l.outFeatures, l.rank], l.b, 2 * n + 1)]
                for (name, shape, values, slot) in shapes {
                    entries.append(SafeTensorsEntry(name: name, floats: values, shape: shape))
                    if !trainer.optimizer.m[slot].isEmpty {
                        entries.append(SafeTensorsEntry(name: name + ".exp_avg", floats: trainer.optimizer.m[slot], shape: shape))
                        entries.append(SafeTensorsEntry(name: name + ".exp_avg_sq", floats: trainer.optimizer.v[slot], shape: shape))
                    }
                }
            }
            try SafeTensorsWriter.write(entries, to: tmp.appendingPathComponent(tensorsFile))
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(state(of: trainer, weights: weights)).write(to: tmp.appendingPathComponent(stateFile))
            try AtomicFile.commit(tmp, to: url)
        } catch {
            try? fm.removeItem(at: tmp)
            if error is InputError { throw error }
            throw InputError(url.path, "cannot write the checkpoint: \(FileErrors.problem(error))")
        }
    }

    /// Whether `url` holds a checkpoint (its state.json).
    public static func exists(at url: URL) -> Bool {
        FileManager.default.fileExists(atPath: url.appendingPathComponent(stateFile).path)
    }

    /// Restores `trainer` (freshly built with the same options, settings and data) from the
    /// checkpoint at `url`, its frozen weights held as `weights`; a checkpoint of another run is
    /// refused with a one-line error.
    public static func restore(_ trainer: RecoveryTrainer, weights: DType = .f32, from url: URL) throws {
        let stateURL = url.appendingPathComponent(stateFile)
        let saved: State
        do { saved = try JSONDecoder().decode(State.self, from: try RegularFile.contents(stateURL)) } catch let e as InputError {
            throw e
        } catch {
            throw InputError(stateURL.path, "is not a recovery checkpoint's state: \(error.localizedDescription)")
        }
        let mine = state(of: trainer, weights: weights)
        func refuse(_ what: String) -> InputError {
            InputError(url.path, "checkpoint was made with other \(what); rerun with the same flags and data, or start afresh with --force")
        }
        guard saved.format == mine.format, saved.version == mine.version else { throw InputError(stateURL.path, "unknown checkpoint format") }
        guard saved.options.resumeKey == mine.options.resumeKey else { throw refuse("training options") }
        guard saved.rank == mine.rank, saved.alpha == mine.alpha, saved.dropout == mine.dropout,
              saved.targets == mine.targets, saved.layers == mine.layers else { throw refuse("LoRA settings") }
        if let held = saved.weights, held != weights {
            throw InputError(stateURL.path, "checkpoint was trained on \(held.rawValue) weights, this run holds them as \(weights.rawValue); "
                             + "resume with --dtype \(held.rawValue.lowercased()), or start afresh with --force")
        }
        guard saved.trainFingerprint == mine.trainFingerprint, saved.validationFingerprint == mine.validationFingerprint else {
            throw refuse("training data")
        }
        guard saved.step >= 0, saved.step <= trainer.totalSteps, saved.optimizerStep == saved.step else {
            throw InputError(stateURL.path, "step \(saved.step) is outside the run's \(trainer.totalSteps) steps")
        }
        let reader = try SafeTensorsReader(url.appendingPathComponent(tensorsFile))
        func tensor(_ name: String, _ shape: [Int]) throws -> [Float] { try reader.floats(name, shape: shape).array }
        for (n, e) in trainer.adapters.entries.enumerated() {
            let l = e.layer
            let a = try tensor(e.site.peftA, [l.rank, l.inFeatures]), b = try tensor(e.site.peftB, [l.outFeatures, l.rank])
            l.a = a
            l.b = b
            if saved.optimizerStep > 0 {
                trainer.optimizer.m[2 * n] = try tensor(e.site.peftA + ".exp_avg", [l.rank, l.inFeatures])
                trainer.optimizer.v[2 * n] = try tensor(e.site.peftA + ".exp_avg_sq", [l.rank, l.inFeatures])
                trainer.optimizer.m[2 * n + 1] = try tensor(e.site.peftB + ".exp_avg", [l.outFeatures, l.rank])
                trainer.optimizer.v[2 * n + 1] = try tensor(e.site.peftB + ".exp_avg_sq", [l.outFeatures, l.rank])
            }
            l.zeroGradients()
        }
        trainer.optimizer.step = saved.optimizerStep
        trainer.step = saved.step
        trainer.history = saved.history
    }
}
