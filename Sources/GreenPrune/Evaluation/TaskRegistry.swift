import Foundation

/// The tasks `greenprune evaluate --tasks` knows: the built-in ones written in Swift and every
/// multiple-choice description (`*.yaml`, `*.yml`, `*.json`) in the task directory.
///
/// It is the one place the sweep and the report learn a task's facts (`info`): adding a
/// multiple-choice task is one description file, and its `tag` puts it in a group's average.
public struct TaskRegistry {
    public enum Entry {
        case language(EvaluationTask)
        case encoder(EncoderTask)
        /// A decoder compared with its baseline (`output_drift`, needs `--baseline`).
        case decoderDrift(OutputDriftTask)

        /// The task's metrics, groups and cost.
        public var info: TaskInfo {
            switch self {
            case let .language(t): return t.info
            case let .encoder(t): return t.info
            case let .decoderDrift(t): return t.info
            }
        }
    }

    /// The tasks written in Swift, whatever the task directory holds.
    public static var builtIn: [String: Entry] {
        var entries: [String: Entry] = [:]
        for t: EvaluationTask in [WikitextTask(), ChunkedPerplexityTask(.wikitext2), ChunkedPerplexityTask(.ptb), LambadaTask()] {
            entries[t.name] = .language(t)
        }
        for t: EncoderTask in [STSBTask(), EmbeddingDriftTask()] { entries[t.name] = .encoder(t) }
        entries[OutputDriftTask().name] = .decoderDrift(OutputDriftTask())
        return entries
    }

    /// Whether `name` is a comparison task (run against `--baseline`). Only Swift tasks compare,
    /// so no description file is read.
    public static func needsBaseline(_ name: String) -> Bool { builtIn[name]?.info.needsBaseline ?? false }

    public private(set) var entries: [String: Entry] = [:]
    /// Where the descriptions were read from (nil when none was found).
    public let specDirectory: URL?

    /// Built-in tasks plus the descriptions in `specDirectory` (default: `taskDirectory()`).
    public init(specDirectory: URL? = TaskRegistry.taskDirectory()) throws {
        self.specDirectory = specDirectory
        entries = Self.builtIn
        guard let dir = specDirectory else { return }
        let files = (try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []
        for url in files.sorted(by: { $0.lastPathComponent < $1.lastPathComponent })
        where ["yaml", "yml", "json"].contains(url.pathExtension.lowercased()) {
            let spec = try MultipleChoiceSpec.load(url)
            if entries[spec.task] != nil { throw InputError(url.path, "task \(spec.task) is defined twice") }
            entries[spec.task] = .language(MultipleChoiceTask(spec: spec))
        }
    }

    /// Task names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// The facts of task `name`, nil for a task the registry does not know.
    public func info(_ name: String) -> TaskInfo? { entries[name]?.info }

    /// The tasks in `group` (lm-eval `tag`), sorted.
    public func members(of group: String) -> [String] { entries.filter { $0.value.info.groups.contains(group) }.keys.sorted() }

    /// The task called `name`, or an error listing the known ones.
    public func task(_ name: String) throws -> Entry {
        guard let e = entries[name] else {
            let hint = specDirectory == nil ? " (no configs/tasks directory found: set GREENPRUNE_TASKS)" : ""
            throw InputError("--tasks", "unknown task \(name); known: \(names.joined(separator: ", "))\(hint)")
        }
        return e
    }

    /// The multiple-choice descriptions: `$GREENPRUNE_TASKS`, else `configs/tasks` in the current
    /// directory or the nearest one above it or above the executable.
    public static func taskDirectory() -> URL? {
        let fm = FileManager.default
        if let env = GreenPruneEnvironment.process.tasks { return URL(fileURLWithPath: env) }
        var starts = [URL(fileURLWithPath: fm.currentDirectoryPath)]
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        starts.append(exe.deletingLastPathComponent())
        for start in starts {
            var dir = start.standardizedFileURL
            for _ in 0 ..< 8 {
                let candidate = dir.appendingPathComponent("configs/tasks")
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: candidate.path, isDirectory: &isDir), isDir.boolValue { return candidate }
                let up = dir.deletingLastPathComponent()
                if up.path == dir.path { break }
                dir = up
            }
        }
        return nil
    }
}
