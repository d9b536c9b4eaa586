import Foundation

/// `runs/<id>/run.json`: what a finished run was and how it ended. Its run folder is built under
/// a hidden temporary name and renamed into place with this file inside, so a folder
/// `runs/<id>/` exists only for a run that finished (done or failed).
public struct RunRecord: Codable, Equatable {
    public enum Status: String, Codable { case done, failed }

    public struct StepRecord: Codable, Equatable {
        public var name: String
        public var exitCode: Int32
        public var seconds: Double
        public init(name: String, exitCode: Int32, seconds: Double) {
            self.name = name
            self.exitCode = exitCode
            self.seconds = seconds
        }
        enum CodingKeys: String, CodingKey { case name, exitCode = "exit_code", seconds }
    }

    public var id: String
    public var index: Int
    public var model: String
    public var modelPath: String
    public var variant: SweepConfig.VariantSpec
    public var tasks: [SweepConfig.TaskSpec]
    public var settingsHash: String
    public var status: Status
    /// One line saying why a failed run failed.
    public var error: String?
    /// ISO 8601, UTC.
    public var startedAt: String
    public var finishedAt: String
    public var steps: [StepRecord]
    public var greenpruneVersion: String

    enum CodingKeys: String, CodingKey {
        case id, index, model, modelPath = "model_path", variant, tasks, settingsHash = "settings_hash", status, error,
             startedAt = "started_at", finishedAt = "finished_at", steps, greenpruneVersion = "greenprune_version"
    }

    public init(id: String, index: Int, model: String, modelPath: String, variant: SweepConfig.VariantSpec,
                tasks: [SweepConfig.TaskSpec], settingsHash: String, status: Status, error: String?, startedAt: String,
                finishedAt: String, steps: [StepRecord], greenpruneVersion: String) {
        self.id = id
        self.index = index
        self.model = model
        self.modelPath = modelPath
        self.variant = variant
        self.tasks = tasks
        self.settingsHash = settingsHash
        self.status = status
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.steps = steps
        self.greenpruneVersion = greenpruneVersion
    }

    public static let fileName = "run.json"

    /// Reads `dir/run.json`, or nil when there is none (an unfinished or foreign folder).
    public static func read(_ dir: URL) -> RunRecord? {
        guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(fileName).path) else { return nil }
        return try? JSONDecoder().decode(RunRecord.self, from: data)
    }

    static func timestamp(_ date: Date = Date()) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }
}
