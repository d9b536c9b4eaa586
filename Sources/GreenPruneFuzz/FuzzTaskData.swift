import Foundation
import GreenPrune

/// The evaluation tasks whose data readers the `taskdata` target feeds: the multiple-choice
/// descriptions in configs/tasks (found as `greenprune evaluate` finds them) and the built-in readers.
enum FuzzTaskData {
    enum Entry {
        case language(EvaluationTask)
        case stsb
    }

    private static let cached: Result<[Entry], Error> = Result {
        guard let dir = TaskRegistry.taskDirectory() else {
            throw InputError("configs/tasks", "not found (run from the repository or set GREENPRUNE_TASKS)")
        }
        let registry = try TaskRegistry(specDirectory: dir)
        var out: [Entry] = []
        for name in registry.names {
            if case .language(let t) = try registry.task(name), !(t is ChunkedPerplexityTask) { out.append(.language(t)) }
        }
        out.append(.stsb)
        return out
    }

    /// The tasks in a fixed order (the input's first byte picks one).
    static func tasks() throws -> [Entry] { try cached.get() }

    /// The data files `task` reads, relative to the data folder.
    static func files(of task: EvaluationTask) -> [String] {
        switch task {
        case let t as MultipleChoiceTask: return [t.spec.file] + (t.spec.labelsFile.map { [$0] } ?? [])
        case is WikitextTask: return [WikitextTask.file]
        case is LambadaTask: return [LambadaTask.file]
        default: return []
        }
    }
}
