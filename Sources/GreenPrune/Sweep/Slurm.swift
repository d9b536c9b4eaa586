import Foundation

/// Sweeps on a Slurm cluster: one job-array task per planned run, each running
/// `greenprune sweep CONFIG --only $SLURM_ARRAY_TASK_ID` in the submitting directory.
/// Tasks share the sweep folder (a shared filesystem): each builds its own run folder, and
/// results.csv is rebuilt under a lock; `greenprune report` merges whatever has finished.
public struct SlurmOptions: Equatable {
    public var partition: String?
    /// `--time`, e.g. `00:30:00`.
    public var time: String?
    public var cpusPerTask: Int?
    /// `--mem`, e.g. `4G`.
    public var mem: String?
    /// At most this many array tasks at once (`--array=0-N%K`).
    public var maxParallel: Int?

    public init(partition: String? = nil, time: String? = nil, cpusPerTask: Int? = nil, mem: String? = nil, maxParallel: Int? = nil) {
        self.partition = partition
        self.time = time
        self.cpusPerTask = cpusPerTask
        self.mem = mem
        self.maxParallel = maxParallel
    }
}

public enum Slurm {
    /// The sbatch script for `plan`. Paths must be absolute (array tasks start elsewhere).
    public static func script(plan: SweepPlan, config: URL, output: URL, binary: String, workingDirectory: URL,
                              options: SlurmOptions) -> String {
        let name = "greenprune-" + config.deletingPathExtension().lastPathComponent
        var lines = ["#!/bin/bash", "# Written by greenprune sweep --slurm: one array task per run of \(output.path)/plan.json.",
                     "#SBATCH --job-name=\(name)",
                     "#SBATCH --array=0-\(plan.runs.count - 1)" + (options.maxParallel.map { "%\($0)" } ?? ""),
                     "#SBATCH --output=\(output.path)/slurm/%A_%a.out",
                     "#SBATCH --chdir=\(workingDirectory.path)"]
        if let p = options.partition { lines.append("#SBATCH --partition=\(p)") }
        if let t = options.time { lines.append("#SBATCH --time=\(t)") }
        if let c = options.cpusPerTask { lines.append("#SBATCH --cpus-per-task=\(c)") }
        if let m = options.mem { lines.append("#SBATCH --mem=\(m)") }
        lines += ["set -euo pipefail",
                  "cd \(shellQuote(workingDirectory.path))",
                  "exec \(shellQuote(binary)) sweep \(shellQuote(config.path)) --only \"$SLURM_ARRAY_TASK_ID\" --output \(shellQuote(output.path))",
                  ""]
        return lines.joined(separator: "\n")
    }

    /// Writes `OUT/slurm/sweep.sbatch` (and the plan) and returns the script's path.
    public static func write(plan: SweepPlan, config: URL, output: URL, binary: String, workingDirectory: URL,
                             options: SlurmOptions) throws -> URL {
        let dir = output.appendingPathComponent("slurm")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let runner = SweepRunner(plan: plan, output: output, executor: ProcessStepExecutor(binary: binary, energy: plan.energy))
        try runner.writePlan()
        let url = dir.appendingPathComponent("sweep.sbatch")
        try AtomicFile.write(script(plan: plan, config: config, output: output, binary: binary,
                                    workingDirectory: workingDirectory, options: options), to: url)
        chmod(url.path, 0o755)
        return url
    }

    /// Runs `sbatch --parsable SCRIPT` and returns the job id.
    public static func submit(_ script: URL) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sbatch", "--parsable", script.path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { throw InputError("sbatch", "cannot start: \(error.localizedDescription)") }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw InputError("sbatch", "failed (\(p.terminationStatus)): " + ConfigNode.oneLine(String(decoding: e, as: UTF8.self)))
        }
        let id = String(decoding: o, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return String(id.split(separator: ";").first ?? "")
    }

    static func shellQuote(_ s: String) -> String {
        s.allSatisfy({ $0.isLetter || $0.isNumber || "/._-+:=,@".contains($0) }) ? s
            : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
