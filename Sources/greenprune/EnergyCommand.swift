import ArgumentParser
import Foundation
import GreenPrune
#if canImport(Glibc)
import Glibc
#endif

extension MeterChoice: ExpressibleByArgument {}
extension TrackingMode: ExpressibleByArgument {}

/// The tracker's flags, shared by `energy` and any command that wants to meter itself.
struct EnergyFlags: ParsableArguments {
    @Option(help: "Where emissions.csv (appended), energy.json and power.h5 go.")
    var outputDir: String = "."
    @Option(help: "CodeCarbon's project_name column.")
    var projectName: String = "codecarbon"
    @Option(name: .customLong("experiment-id"), help: "CodeCarbon's experiment_id column.")
    var experimentID: String = "5b0fa12a-3dd7-45bb-9766-cc326314d9f1"
    @Option(help: "auto | rapl | nvml | estimate | none.")
    var energyMeter: MeterChoice = .auto
    @Option(help: "machine | process: whose CPU load the estimates use.")
    var trackingMode: TrackingMode = .machine
    @Option(help: "Seconds between power samples.")
    var interval: Double = 1.0
    @Option(help: "Power usage effectiveness of the data centre (>= 1).")
    var pue: Double = 1.0
    @Option(help: "ISO 3166-1 alpha-3 country code for the carbon intensity (e.g. ITA).")
    var country: String?
    @Option(help: "Carbon intensity in g CO2eq/kWh, overriding the country table.")
    var carbonIntensity: Double?
    @Option(help: "RAM power in W instead of the DIMM model.")
    var ramWatts: Double?
    @Option(help: "CPU power at full load in W instead of the TDP table.")
    var cpuTdp: Double?
    @Flag(help: "Also read RAPL DRAM zones as the RAM figure.")
    var raplDram = false
    @Flag(help: "Use the RAPL psys zone instead of the packages.")
    var raplPsys = false
    @Option(help: "Path of the NVML library (default libnvidia-ml.so.1).")
    var nvmlLibrary: String?

    var options: EnergyOptions {
        var o = EnergyOptions()
        o.meter = energyMeter
        o.trackingMode = trackingMode
        o.interval = interval
        o.pue = pue
        o.country = country
        o.carbonIntensity = carbonIntensity
        o.ramWatts = ramWatts
        o.cpuTDP = cpuTdp
        o.includeDRAM = raplDram
        o.preferPsys = raplPsys
        o.projectName = projectName
        o.experimentID = experimentID
        o.nvmlLibrary = nvmlLibrary
        return o
    }

    func validate() throws {
        do { try options.validate() } catch let e as InputError { throw ValidationError(e.description) }
    }
}

/// `greenprune energy [options] -- COMMAND ARGS…`: runs a command under the tracker, like
/// `codecarbon monitor`, and exits with the command's status.
struct Energy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command and measure (or estimate) the energy and emissions it causes.",
        discussion: """
            Writes OUT/emissions.csv (CodeCarbon 3.x columns, appended), OUT/energy.json (per component: \
            energy and how it was obtained) and OUT/power.h5 (power samples), prints a summary on stderr \
            and exits with the command's exit code (128+N if it was killed by signal N).
            """
    )

    @OptionGroup var flags: EnergyFlags

    @Argument(parsing: .postTerminator, help: "The command to run, after `--`.")
    var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("give the command to run after `--`, e.g. greenprune energy -- sleep 5") }
    }

    func run() throws {
        // power.h5 needs libhdf5: fail before the command runs, not after.
        try HDF5Library.load(for: URL(fileURLWithPath: flags.outputDir).appendingPathComponent("power.h5"))
        let tracker = try EnergyTracker(flags.options)
        try tracker.start()
        let label = command.joined(separator: " ")
        let status = try tracker.phase(label.count > 80 ? String(label.prefix(77)) + "..." : label) {
            // The command dies with this process (ChildProcess); SIGINT and SIGTERM are left to it
            // while the tracker waits, so the tracker survives to write its files.
            try ChildProcess.run(command, ignoringInterrupts: true)
        }
        let report = try tracker.stop()
        try report.write(to: URL(fileURLWithPath: flags.outputDir))
        FileHandle.standardError.write(Data((report.summary() + "\n").utf8))
        if status != 0 { throw ExitCode(status) }
    }
}
