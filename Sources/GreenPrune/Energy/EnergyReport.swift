import Foundation

/// Energy of one component (cpu, gpu, ram) over a run or a phase.
public struct ComponentEnergy: Codable, Equatable, Sendable {
    public var component: EnergyComponent
    /// Joules drawn by the hardware (before PUE).
    public var energyJ: Double
    /// kWh including PUE: what CodeCarbon reports as `cpu_energy` etc.
    public var energyKWh: Double
    /// Mean power over the span (energyJ / duration), in W, before PUE.
    public var averagePowerW: Double
    /// How it was obtained, one entry per channel (`rapl:package-0`, `estimate:cpu_load tdp=8 W`).
    public var methods: [String]
    /// True when any part is a model estimate rather than a counter.
    public var isEstimate: Bool

    enum CodingKeys: String, CodingKey {
        case component, energyJ = "energy_j", energyKWh = "energy_kwh", averagePowerW = "average_power_w"
        case methods, isEstimate = "estimate"
    }

    public init(component: EnergyComponent, energyJ: Double, energyKWh: Double, averagePowerW: Double,
                methods: [String], isEstimate: Bool) {
        self.component = component
        self.energyJ = energyJ
        self.energyKWh = energyKWh
        self.averagePowerW = averagePowerW
        self.methods = methods
        self.isEstimate = isEstimate
    }
}

/// A named span of work inside a tracked run (`prune`, `eval:hellaswag`).
public struct PhaseEnergy: Codable, Equatable, Sendable {
    public var name: String
    /// Seconds since the tracker started.
    public var startS: Double
    public var endS: Double
    public var components: [ComponentEnergy]
    /// kWh including PUE, all components.
    public var energyKWh: Double
    /// kg CO2eq.
    public var emissionsKg: Double
    public var durationS: Double { endS - startS }

    /// The component's figures in this phase (zero when not tracked).
    public func component(_ c: EnergyComponent) -> ComponentEnergy {
        components.first { $0.component == c }
            ?? ComponentEnergy(component: c, energyJ: 0, energyKWh: 0, averagePowerW: 0, methods: [], isEstimate: false)
    }

    enum CodingKeys: String, CodingKey {
        case name, startS = "start_s", endS = "end_s", components, energyKWh = "energy_kwh", emissionsKg = "emissions_kg"
    }
}

/// One channel's total (a RAPL package, one GPU, the RAM estimate).
public struct ChannelEnergy: Codable, Equatable, Sendable {
    public var channel: MeterChannel
    public var energyJ: Double

    enum CodingKeys: String, CodingKey { case channel, energyJ = "energy_j" }
}

/// The power samples of a run, written to power.h5: cumulative energy per channel at each sample.
public struct PowerTrace: Sendable {
    public var channels: [MeterChannel]
    /// Seconds since start, one per sample (the first is 0).
    public var timeS: [Double]
    /// Joules since start, `[sample][channel]`.
    public var energyJ: [[Double]]

    /// Mean power over the interval ending at each sample, `[sample][channel]` (row 0 is 0).
    public var powerW: [[Double]] {
        timeS.indices.map { i in
            guard i > 0, timeS[i] > timeS[i - 1] else { return Array(repeating: 0, count: channels.count) }
            let dt = timeS[i] - timeS[i - 1]
            return channels.indices.map { (energyJ[i][$0] - energyJ[i - 1][$0]) / dt }
        }
    }
}

/// What a tracked run consumed, per component and per phase, and how each figure was obtained;
/// written as energy.json, a row of emissions.csv and power.h5.
public struct EnergyReport: Codable, Sendable {
    public var runID: String
    public var projectName: String
    public var experimentID: String
    /// Local wall-clock time at stop, `yyyy-MM-ddTHH:mm:ss` (CodeCarbon's timestamp).
    public var timestamp: String
    public var durationS: Double
    public var meterChoice: MeterChoice
    public var trackingMode: TrackingMode
    public var pue: Double
    public var carbonIntensity: CarbonIntensity
    /// kWh including PUE, all components.
    public var energyKWh: Double
    /// kg CO2eq.
    public var emissionsKg: Double
    /// True when any figure is a model estimate; the summary says so in words.
    public var isEstimate: Bool
    public var components: [ComponentEnergy]
    public var channels: [ChannelEnergy]
    public var phases: [PhaseEnergy]
    /// Fallbacks taken and problems met (unreadable RAPL, a counter without range, failed reads).
    public var notes: [String]
    public var host: HostInfo
    /// The CPU power the estimate assumed, when the CPU was estimated.
    public var cpuPower: CPUPowerSpec?
    public var gpuNames: [String]
    /// Mean machine CPU load over the run's sampling intervals, % (CodeCarbon's semantics: the
    /// mean of one machine-wide reading per interval, 0 when no interval completed), and mean RAM
    /// use (% and GB), for the CSV.
    public var cpuUtilizationPercent: Double
    public var ramUtilizationPercent: Double
    public var ramUsedGB: Double
    public var samples: Int
    /// The GreenPrune that measured (emissions.csv's `codecarbon_version` names the CodeCarbon
    /// release whose format the row follows).
    public var greenpruneVersion: String? = GreenPruneInfo.version
    /// The samples themselves (not in energy.json; written to power.h5).
    public var trace: PowerTrace?

    enum CodingKeys: String, CodingKey {
        case runID = "run_id", projectName = "project_name", experimentID = "experiment_id", timestamp
        case durationS = "duration_s", meterChoice = "energy_meter", trackingMode = "tracking_mode", pue
        case carbonIntensity = "carbon_intensity", energyKWh = "energy_kwh", emissionsKg = "emissions_kg"
        case isEstimate = "estimate", components, channels, phases, notes, host, cpuPower = "cpu_power_model"
        case gpuNames = "gpu_names", cpuUtilizationPercent = "cpu_utilization_percent"
        case ramUtilizationPercent = "ram_utilization_percent", ramUsedGB = "ram_used_gb", samples
        case greenpruneVersion = "greenprune_version"
    }

    /// The component's figures (zero and "not tracked" when absent).
    public func component(_ c: EnergyComponent) -> ComponentEnergy {
        components.first { $0.component == c }
            ?? ComponentEnergy(component: c, energyJ: 0, energyKWh: 0, averagePowerW: 0, methods: [], isEstimate: false)
    }

    /// energy.json: this report, pretty-printed with sorted keys.
    public func json() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try enc.encode(self)
    }

    /// A few lines for stderr: energy and emissions per component, labelled when estimated.
    public func summary() -> String {
        var lines: [String] = []
        let label = components.isEmpty ? " (nothing metered: --energy-meter none)"
            : isEstimate ? " (ESTIMATE: no hardware counter for some components)" : " (measured)"
        lines.append(String(format: "energy: %.6f kWh, %.6f kg CO2eq over %.1f s%@", energyKWh, emissionsKg, durationS, label))
        for c in components {
            lines.append(String(format: "  %@: %.1f J (%.6f kWh), %.2f W avg  [%@]%@", c.component.rawValue, c.energyJ,
                                c.energyKWh, c.averagePowerW, c.methods.joined(separator: ", "), c.isEstimate ? " estimate" : ""))
        }
        for p in phases {
            lines.append(String(format: "  phase %@: %.1f s, %.6f kWh, %.6f kg CO2eq", p.name, p.durationS, p.energyKWh, p.emissionsKg))
        }
        lines.append(String(format: "  carbon intensity %.0f g/kWh (%@), PUE %.2f", carbonIntensity.gramsPerKWh, carbonIntensity.source, pue))
        return lines.joined(separator: "\n")
    }

    /// Writes `dir/power.h5` and `dir/energy.json` (atomically) and appends a row to
    /// `dir/emissions.csv`, creating `dir` if needed; in that order, so a failure leaves no
    /// emissions row for a run whose files are missing.
    public func write(to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        if let t = trace { try t.write(to: dir.appendingPathComponent("power.h5"), report: self) }
        try AtomicFile.write(try json(), to: dir.appendingPathComponent("energy.json"))
        try EmissionsCSV.append(EmissionsCSV.row(for: self), to: dir.appendingPathComponent("emissions.csv"))
    }
}
