import Foundation

/// CPU energy estimated from load and TDP, for machines without readable counters (CodeCarbon's
/// `cpu_load` mode).
///
/// At each read the power over the interval since the previous read is
/// - machine mode: P = TDP · (0.1 + 0.9 · load³), load = Δbusy / Δtotal ticks of `/proc/stat`;
/// - process mode: P = TDP · Δcpu / (Δt · threads), Δcpu the CPU seconds of this process and
///   its children (utime + stime + cutime + cstime of `/proc/<pid>/stat`, live descendants too);
/// and the energy grows by P · Δt.
public final class CPUEstimateMeter: EnergyMeter {
    public let spec: CPUPowerSpec
    public let mode: TrackingMode
    public let threads: Int
    public let channels: [MeterChannel]
    public private(set) var notes: [String] = []
    /// The power over the last interval, in watts.
    public private(set) var lastPowerW = 0.0
    private let proc: ProcFS
    private let pid: Int32
    private var lastTime = 0.0
    private var lastBusy: UInt64 = 0, lastTotal: UInt64 = 0
    private var lastCPU = 0.0
    private var energyJ = 0.0

    public init(spec: CPUPowerSpec, mode: TrackingMode, threads: Int, proc: ProcFS = ProcFS(),
                pid: Int32 = getpid()) {
        self.spec = spec
        self.mode = mode
        self.threads = max(threads, 1)
        self.proc = proc
        self.pid = pid
        let how = mode == .machine ? "cpu_load" : "process"
        channels = [MeterChannel(name: "cpu", component: .cpu,
                                 method: "estimate:\(how) tdp=\(fmt(spec.tdpWatts)) W", isEstimate: true)]
    }

    public func start(at time: Double) throws {
        lastTime = time
        energyJ = 0
        switch mode {
        case .machine: (lastBusy, lastTotal) = try proc.machineTicks()
        case .process: lastCPU = try proc.treeCPUSeconds(pid)
        }
    }

    public func read(at time: Double) throws -> [Double] {
        let dt = max(time - lastTime, 0)
        switch mode {
        case .machine:
            let (busy, total) = try proc.machineTicks()
            let db = busy >= lastBusy ? busy - lastBusy : 0
            let dtot = total >= lastTotal ? total - lastTotal : 0
            // No tick elapsed (reads closer than 1/CLK_TCK): keep the previous interval's power.
            if dtot > 0 {
                lastPowerW = PowerModel.cpuLoadPower(tdp: spec.tdpWatts, load: Double(db) / Double(dtot))
                (lastBusy, lastTotal) = (busy, total)
            } else if lastPowerW == 0 {
                lastPowerW = PowerModel.cpuLoadPower(tdp: spec.tdpWatts, load: 0)
            }
        case .process:
            let cpu = try proc.treeCPUSeconds(pid)
            let dc = max(cpu - lastCPU, 0)
            lastCPU = max(cpu, lastCPU)
            lastPowerW = PowerModel.processPower(tdp: spec.tdpWatts, cpuSeconds: dc, wallSeconds: dt, threads: threads)
        }
        energyJ += lastPowerW * dt
        lastTime = time
        return [energyJ]
    }
}

/// RAM energy from CodeCarbon v3's DIMM model: 5 W per estimated DIMM (diminishing beyond four),
/// at least 10 W on x86, times the elapsed time; or a fixed power from `--ram-watts`.
///
/// Machine mode sizes the DIMMs from total RAM; process mode from the resident memory of this
/// process and its children, read at every sample (which lands on the 10 W floor for all but
/// very large processes, as in CodeCarbon).
public final class RAMEstimateMeter: EnergyMeter {
    public let channels: [MeterChannel]
    public private(set) var notes: [String] = []
    public private(set) var lastPowerW: Double
    private let fixedWatts: Double?
    private let mode: TrackingMode
    private let arm: Bool
    private let proc: ProcFS
    private let pid: Int32
    private var lastTime = 0.0
    private var energyJ = 0.0

    /// `fixedWatts` overrides the model; otherwise machine mode uses `totalGB`.
    public init(fixedWatts: Double?, mode: TrackingMode, totalGB: Double, arm: Bool = false,
                proc: ProcFS = ProcFS(), pid: Int32 = getpid()) {
        self.fixedWatts = fixedWatts
        self.mode = mode
        self.arm = arm
        self.proc = proc
        self.pid = pid
        let method: String
        if let w = fixedWatts {
            lastPowerW = w
            method = "estimate:ram --ram-watts=\(fmt(w)) W"
        } else if mode == .machine {
            let n = PowerModel.estimatedDIMMCount(totalGB: totalGB)
            lastPowerW = PowerModel.ramPower(dimms: n, arm: arm)
            method = "estimate:ram dimms=\(n) power=\(fmt(lastPowerW)) W (\(String(format: "%.1f", totalGB)) GB)"
        } else {
            lastPowerW = PowerModel.ramPower(dimms: 1, arm: arm)
            method = "estimate:ram process-rss dimm model"
        }
        channels = [MeterChannel(name: "ram", component: .ram, method: method, isEstimate: true)]
    }

    public func start(at time: Double) throws {
        lastTime = time
        energyJ = 0
    }

    public func read(at time: Double) throws -> [Double] {
        let dt = max(time - lastTime, 0)
        if fixedWatts == nil, mode == .process {
            let gb = ((try? proc.treeRSSBytes(pid)) ?? 0) / 1_073_741_824
            lastPowerW = PowerModel.ramPower(totalGB: gb, arm: arm)
        }
        energyJ += lastPowerW * dt
        lastTime = time
        return [energyJ]
    }
}
