import ArgumentParser
import Foundation
import GreenPrune

/// The memory check a command makes before it loads a model: its planned peak against
/// MemAvailable (or `--memory-limit`, e.g. a job's allocation).
struct MemoryFlags: ParsableArguments {
    @Option(help: "Plan against this many bytes (suffix K, M, G) instead of MemAvailable in /proc/meminfo.")
    var memoryLimit: String?

    @Flag(help: "Run even when the planned peak memory exceeds what is available.")
    var skipMemoryCheck = false

    /// The bytes a plan must fit in (nil: unknown, no check).
    func available() throws -> Int? {
        guard let s = memoryLimit else { return MemoryPlan.memoryAvailable() }
        let units: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
        let unit = s.last.flatMap { units[Character($0.uppercased())] }
        guard let x = Double(unit == nil ? s : String(s.dropLast())), x > 0, x.isFinite else {
            throw ValidationError("--memory-limit: '\(s)' is not a size (bytes, or a number with K, M or G)")
        }
        return Int(x * (unit ?? 1))
    }

    /// Throws the plan's one-line error when it does not fit (unless skipped).
    func check(_ plan: MemoryPlan, what: String) throws {
        guard !skipMemoryCheck, let limit = try available() else { return }
        try plan.check(available: limit, what: what)
    }
}
