import Foundation

/// One step of a run: a `greenprune` subcommand with its arguments, measured by the energy
/// tracker into `energyDirectory`, its stdout and stderr going to `log`.
public struct SweepStep: Equatable {
    /// `prune`, `quantize`, `evaluate-1`, …
    public var name: String
    /// The subcommand and its arguments, without the binary (`["prune", DIR, "--out", OUT, …]`).
    public var arguments: [String]
    /// Where `greenprune energy` writes emissions.csv, energy.json and power.h5; nil runs unmeasured.
    public var energyDirectory: URL?
    /// CodeCarbon's `project_name` for the step: `<run id>/<step>`.
    public var projectName: String
    public var log: URL

    public init(name: String, arguments: [String], energyDirectory: URL?, projectName: String, log: URL) {
        self.name = name
        self.arguments = arguments
        self.energyDirectory = energyDirectory
        self.projectName = projectName
        self.log = log
    }
}

/// Runs sweep steps. The real one starts child processes of the `greenprune` binary; tests plug
/// in fakes that write the contract files (docs/CLI.md) without models.
public protocol StepExecutor {
    /// Runs `step` to completion and returns its exit status (0 = success).
    func run(_ step: SweepStep) throws -> Int32
}

/// Runs each step as `BINARY energy --output-dir D --project-name N [...] -- BINARY ARGS…`.
public struct ProcessStepExecutor: StepExecutor {
    /// The `greenprune` binary (or a stand-in with the same contract).
    public var binary: String
    public var energy: SweepConfig.EnergySettings

    public init(binary: String, energy: SweepConfig.EnergySettings) {
        self.binary = binary
        self.energy = energy
    }

    /// The binary to run steps with: `$GREENPRUNE_SWEEP_BINARY` (tests point it at a fake), else
    /// this process's own executable.
    public static func defaultBinary() -> String {
        if let b = GreenPruneEnvironment.process.sweepBinary { return b }
        return ownExecutable()
    }

    /// The path of the running executable.
    public static func ownExecutable() -> String {
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        return Bundle.main.executablePath ?? CommandLine.arguments[0]
    }

    /// The full command line of a step.
    public func commandLine(_ step: SweepStep) -> [String] {
        guard let dir = step.energyDirectory else { return [binary] + step.arguments }
        return [binary, "energy", "--output-dir", dir.path, "--project-name", step.projectName] + energy.arguments
            + ["--", binary] + step.arguments
    }

    public func run(_ step: SweepStep) throws -> Int32 {
        let argv = commandLine(step)
        _ = FileManager.default.createFile(atPath: step.log.path, contents: Data(("$ " + argv.joined(separator: " ") + "\n").utf8))
        guard let out = FileHandle(forWritingAtPath: step.log.path) else { throw InputError(step.log.path, "cannot write the log") }
        defer { try? out.close() }
        out.seekToEndOfFile()
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        var env = ProcessInfo.processInfo.environment
        env["GREENPRUNE_NO_PROGRESS"] = "1"
        // In the sweep's process group and killed when the sweep dies: a killed sweep leaves no
        // step running on into its folders.
        return try ChildProcess.run(argv, environment: env,
                                    streams: .init(input: null >= 0 ? null : nil, output: out.fileDescriptor, error: out.fileDescriptor))
    }
}
