import Foundation

/// Everything a tracker needs to know; the `greenprune energy` flags map one-to-one onto it.
public struct EnergyOptions {
    /// `--energy-meter`: which meters to use.
    public var meter: MeterChoice = .auto
    /// `--tracking-mode`: the whole machine or this process tree (affects estimates only).
    public var trackingMode: TrackingMode = .machine
    /// `--interval`: seconds between background samples.
    public var interval: Double = 1.0
    /// `--pue`: power usage effectiveness of the data centre; multiplies every energy.
    public var pue: Double = 1.0
    /// `--country`: ISO 3166-1 alpha-3 code for the carbon intensity table.
    public var country: String?
    /// `--carbon-intensity`: g CO2eq/kWh, overriding the table.
    public var carbonIntensity: Double?
    /// `--ram-watts`: RAM power instead of the DIMM model.
    public var ramWatts: Double?
    /// `--cpu-tdp`: CPU power at full load instead of the TDP table.
    public var cpuTDP: Double?
    /// Also measure RAPL DRAM zones as the RAM figure (when readable).
    public var includeDRAM = false
    /// Use the RAPL psys (platform) zone instead of packages, where present.
    public var preferPsys = false
    /// CodeCarbon's `project_name` and `experiment_id` columns (its defaults).
    public var projectName = "codecarbon"
    public var experimentID = "5b0fa12a-3dd7-45bb-9766-cc326314d9f1"
    /// Where the powercap tree and procfs live (tests point these at fake trees).
    public var powercapRoot = "/sys/class/powercap"
    public var procRoot = "/proc"
    /// NVML library to open (default: the driver's `libnvidia-ml.so.1`).
    public var nvmlLibrary: String?
    /// How sysfs files are read (tests inject unreadable files).
    public var sysfsReader: SysfsReader = SysfsFile.read
    /// Print fallback explanations on stderr (each distinct one once per process).
    public var announce = true

    public init() {}

    /// Throws `InputError` naming the flag for impossible values.
    public func validate() throws {
        guard interval.isFinite, interval >= 0.01, interval <= 3600 else {
            throw InputError("--interval", "must be between 0.01 and 3600 seconds, got \(interval)")
        }
        guard pue.isFinite, pue >= 1, pue <= 10 else { throw InputError("--pue", "must be between 1 and 10, got \(pue)") }
        if let c = carbonIntensity, !(c.isFinite && c >= 0 && c <= 5000) {
            throw InputError("--carbon-intensity", "must be between 0 and 5000 g/kWh, got \(c)")
        }
        if let w = ramWatts, !(w.isFinite && w >= 0 && w <= 10000) {
            throw InputError("--ram-watts", "must be between 0 and 10000 W, got \(w)")
        }
        if let w = cpuTDP, !(w.isFinite && w > 0 && w <= 10000) {
            throw InputError("--cpu-tdp", "must be between 0 and 10000 W, got \(w)")
        }
        if let c = country, !(c.count == 3 && c.allSatisfy { $0.isASCII && $0.isLetter }) {
            throw InputError("--country", "expected an ISO 3166-1 alpha-3 code such as ITA, got '\(c)'")
        }
    }
}

/// The meters a tracker will read, and what was decided on the way.
public struct MeterSetup {
    public var meters: [EnergyMeter]
    /// Fallbacks taken and why (one line each), recorded in energy.json.
    public var notes: [String]
    public var host: HostInfo
    /// The CPU power an estimate assumes (nil when the CPU is measured or not tracked).
    public var cpuSpec: CPUPowerSpec?
    /// NVML's names of the tracked GPUs.
    public var gpuNames: [String]

    /// Every channel of every meter, in reading order.
    public var channels: [MeterChannel] { meters.flatMap(\.channels) }
}

/// Chooses meters for `EnergyOptions.meter` (the factory of `EnergyMeter`s).
public enum EnergyMeterFactory {
    /// auto: RAPL packages if readable, else a CPU estimate; NVML GPUs if the library loads and
    /// sees a GPU; RAM from RAPL DRAM zones when `includeDRAM` and readable, else the DIMM model.
    /// `rapl`/`nvml` throw when that meter cannot be used; `estimate` ignores counters; `none`
    /// tracks nothing.
    public static func make(_ o: EnergyOptions, host: HostInfo) throws -> MeterSetup {
        var setup = MeterSetup(meters: [], notes: [], host: host, cpuSpec: nil, gpuNames: [])
        if o.meter == .none {
            setup.notes.append("--energy-meter none: no energy is measured or estimated")
            return setup
        }
        let root = URL(fileURLWithPath: o.powercapRoot)
        let proc = ProcFS(root: o.procRoot)
        var cpu: EnergyMeter?
        var fallbackReason: String?
        if o.meter != .estimate {
            let d = RAPLMeter.discover(root: root, selection: o.preferPsys ? .psys : .packages, reader: o.sysfsReader)
            if d.domains.isEmpty {
                let why = d.problem ?? "no RAPL zones"
                if o.meter == .rapl { throw InputError("--energy-meter rapl", why) }
                fallbackReason = why
            } else {
                cpu = RAPLMeter(domains: d.domains, component: .cpu, reader: o.sysfsReader)
                if !d.droppedDuplicates.isEmpty {
                    setup.notes.append("RAPL: dropped MMIO zones duplicating MSR zones: \(d.droppedDuplicates.joined(separator: ", "))")
                }
                if let first = d.unreadable.first {
                    setup.notes.append("RAPL: \(d.unreadable.count) zone(s) unreadable and left out, e.g. \(first.path) (\(first.reason))")
                }
            }
        } else {
            fallbackReason = "--energy-meter estimate"
        }
        var gpu: NVMLMeter?
        if o.meter == .auto || o.meter == .nvml {
            do {
                gpu = try NVMLMeter(libraryPath: o.nvmlLibrary)
            } catch {
                if o.meter == .nvml { throw InputError("--energy-meter nvml", (error as? LocalizedError)?.errorDescription ?? "\(error)") }
                if o.nvmlLibrary != nil { setup.notes.append("NVML unavailable, GPUs not tracked: \((error as? LocalizedError)?.errorDescription ?? "\(error)")") }
            }
        }
        if cpu == nil {
            let spec = CPUPowerSpec.resolve(host: host, override: o.cpuTDP)
            let est = CPUEstimateMeter(spec: spec, mode: o.trackingMode, threads: host.threads, proc: proc)
            setup.cpuSpec = spec
            cpu = est
            if let why = fallbackReason {
                setup.notes.append("CPU energy is an ESTIMATE (\(est.channels[0].method); \(spec.source)) because \(why)")
            }
        }
        if let c = cpu { setup.meters.append(c) }
        if let g = gpu {
            setup.meters.append(g)
            setup.gpuNames = g.deviceNames
        }
        var ram: EnergyMeter?
        if o.includeDRAM, o.meter != .estimate {
            let d = RAPLMeter.discover(root: root, selection: .dram, reader: o.sysfsReader)
            if d.domains.isEmpty {
                setup.notes.append("RAPL DRAM zones unavailable (\(d.problem ?? "none found")); RAM energy is estimated")
            } else {
                ram = RAPLMeter(domains: d.domains, component: .ram, reader: o.sysfsReader)
            }
        }
        if ram == nil {
            let est = RAMEstimateMeter(fixedWatts: o.ramWatts, mode: o.trackingMode, totalGB: host.ramTotalGB,
                                       arm: host.isArm, proc: proc)
            setup.notes.append("RAM energy is an ESTIMATE (\(est.channels[0].method))")
            ram = est
        }
        if let r = ram { setup.meters.append(r) }
        return setup
    }
}
