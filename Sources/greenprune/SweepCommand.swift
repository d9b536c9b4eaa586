import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune sweep CONFIG.yaml`: runs a grid of variants, resumably, locally or on Slurm.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a sweep of variants (build → evaluate, each under the energy tracker), resumably.",
        discussion: """
        Each run goes into OUTPUT/runs/<model>__<variant>/ and counts as done once renamed into place;
        rerunning skips finished runs and redoes interrupted ones. OUTPUT/results.csv holds one row per
        run × task × metric. With --slurm, writes an sbatch job array (one task per run) and submits it.
        One sweep at a time works in a folder (a second is refused, or waits with --wait); steps die
        with their sweep. Exits 1 when any run of the plan (or of --only) is recorded as failed.
        """)

    @Argument(help: "The sweep's YAML config (see configs/default.yaml).")
    var config: String

    @Flag(help: "Print the plan with an estimate of the work, run nothing.")
    var dryRun = false

    @Option(help: "Run only the plan entry with this index (Slurm array tasks use it).")
    var only: Int?

    @Option(help: "The sweep folder (default: the config's 'output').")
    var output: String?

    @Flag(help: "Rerun runs recorded as failed (they are skipped by default).")
    var retryFailed = false

    @Flag(help: "When another sweep is running in the output folder, wait for it instead of refusing to start.")
    var wait = false

    @Flag(help: "Do not write the report at the end.")
    var noReport = false

    @Flag(help: "Write an sbatch job array (one task per run) and submit it.")
    var slurm = false
    @Option(help: "Slurm partition (--slurm).") var partition: String?
    @Option(help: "Slurm time limit per task, e.g. 00:30:00 (--slurm).") var time: String?
    @Option(help: "CPUs per array task (--slurm).") var cpusPerTask: Int?
    @Option(help: "Memory per array task, e.g. 4G (--slurm).") var mem: String?
    @Option(help: "At most this many array tasks at once (--slurm).") var maxParallel: Int?
    @Flag(help: "Write the sbatch script and plan, do not submit (--slurm).") var noSubmit = false

    func validate() throws {
        let slurmOnly = partition != nil || time != nil || cpusPerTask != nil || mem != nil || maxParallel != nil || noSubmit
        if slurmOnly && !slurm { throw ValidationError("--partition, --time, --cpus-per-task, --mem, --max-parallel and --no-submit need --slurm") }
        if slurm && (dryRun || only != nil) { throw ValidationError("--slurm cannot be combined with --dry-run or --only") }
        if let o = only, o < 0 { throw ValidationError("--only must be ≥ 0") }
        if let c = cpusPerTask, c < 1 { throw ValidationError("--cpus-per-task must be ≥ 1") }
        if let m = maxParallel, m < 1 { throw ValidationError("--max-parallel must be ≥ 1") }
    }

    func run() throws {
        let configURL = URL(fileURLWithPath: config).standardizedFileURL
        let cfg = try SweepConfig.load(configURL)
        let plan = SweepPlan(config: cfg)
        let out = URL(fileURLWithPath: output ?? cfg.output).standardizedFileURL
        if dryRun {
            print(plan.describe())
            return
        }
        if slurm {
            let gp = GreenPruneEnvironment.process.slurmBinary ?? ProcessStepExecutor.ownExecutable()
            let script = try Slurm.write(plan: plan, config: configURL, output: out, binary: gp,
                                         workingDirectory: URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
                                         options: SlurmOptions(partition: partition, time: time, cpusPerTask: cpusPerTask,
                                                               mem: mem, maxParallel: maxParallel))
            print("sbatch script: \(script.path)")
            print("plan: \(out.appendingPathComponent("plan.json").path) (\(plan.runs.count) array tasks)")
            if !noSubmit {
                let job = try Slurm.submit(script)
                print("submitted job array \(job); when it is done: greenprune report \(out.path)")
            }
            return
        }
        let runner = SweepRunner(plan: plan, output: out,
                                 executor: ProcessStepExecutor(binary: ProcessStepExecutor.defaultBinary(), energy: cfg.energy))
        runner.retryFailed = retryFailed
        runner.waitForLock = wait
        let s = try runner.run(only: only)
        print("sweep: \(s.done) done, \(s.failed) failed, \(s.skipped) already finished; results: \(out.appendingPathComponent("results.csv").path)")
        if only == nil && !noReport {
            let files = try Report.write(from: out)
            for f in files { print("report: \(f.path)") }
        }
        let failed = runner.failedRuns(only: only)
        if !failed.isEmpty {
            let names = failed.prefix(5).map(\.id).joined(separator: ", ") + (failed.count > 5 ? ", …" : "")
            let what = only == nil ? "\(failed.count) of \(plan.runs.count) runs failed" : "the run failed"
            throw InputError(out.path, "\(what) (\(names)); runs/<id>/run.json says why, --retry-failed reruns them")
        }
    }
}
