import Foundation

/// A run of a repeated sweep between its build and its last round: `runs/.<id>.pending/`.
///
/// With `repeat: k` every run's rounds are interleaved with the other runs', so a run is open for
/// most of the sweep. Its built model and finished steps must survive a crash, which the
/// pid-stamped attempt folders (removed by the next sweep) do not: once its build steps have
/// finished, the attempt folder is renamed to this one, whose `pending.json` lists the steps that
/// finished. A later sweep with the same settings hash resumes it: folders of steps the file does
/// not list (a round cut short) are removed and redone. The run folder itself still appears only
/// when the run is complete (this folder renamed to `runs/<id>/` with run.json inside).
final class PendingRun {
    struct State: Codable {
        var settingsHash: String
        var startedAt: String
        var steps: [RunRecord.StepRecord]
        /// Rounds whose every measured step finished.
        var roundsDone: Int
        enum CodingKeys: String, CodingKey {
            case settingsHash = "settings_hash", startedAt = "started_at", steps, roundsDone = "rounds_done"
        }
    }

    static let fileName = "pending.json"

    let run: PlannedRun
    let directory: URL
    var state: State
    /// Why the run failed, once it has.
    var failure: String?
    /// Whether the run folder has been written (the run left the sweep's rounds).
    var closed = false

    init(run: PlannedRun, directory: URL, state: State) {
        self.run = run
        self.directory = directory
        self.state = state
    }

    /// `runs/.<id>.pending`: hidden, so tables and reports skip it, and without a pid, so stale
    /// attempt removal leaves it for the next sweep to resume.
    static func directory(of run: PlannedRun, in runs: URL) -> URL { runs.appendingPathComponent(".\(run.id).pending") }

    /// The pending folder of `run` ready to go on, or nil (none, another settings hash, or a failed
    /// step recorded: removed then).
    static func resume(_ run: PlannedRun, in runs: URL) -> PendingRun? {
        let fm = FileManager.default
        let dir = directory(of: run, in: runs)
        guard fm.fileExists(atPath: dir.path) else { return nil }
        guard let data = fm.contents(atPath: dir.appendingPathComponent(fileName).path),
              let state = try? JSONDecoder().decode(State.self, from: data), state.settingsHash == run.settingsHash,
              state.steps.allSatisfy({ $0.exitCode == 0 }) else {
            try? fm.removeItem(at: dir)
            return nil
        }
        // Steps numbered past the recorded ones were cut short.
        for sub in ["steps", "logs"] {
            let d = dir.appendingPathComponent(sub)
            for name in (try? fm.contentsOfDirectory(atPath: d.path)) ?? [] {
                if let k = Int(name.prefix { $0.isNumber }), k > state.steps.count { try? fm.removeItem(at: d.appendingPathComponent(name)) }
            }
        }
        return PendingRun(run: run, directory: dir, state: state)
    }

    /// Writes pending.json atomically (after each finished step).
    func save() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(state), to: directory.appendingPathComponent(Self.fileName))
    }
}
