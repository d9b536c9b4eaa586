import Foundation

/// Measures the energy of a piece of work, in total and per named phase.
///
/// ```swift
/// var options = EnergyOptions()
/// options.country = "ITA"
/// let tracker = try EnergyTracker(options)
/// try tracker.start()
/// let model = try tracker.phase("prune") { try prune(...) }
/// try tracker.phase("eval:hellaswag") { try evaluate(model) }
/// let report = try tracker.stop()          // energy per component and phase, emissions
/// try report.write(to: outputDirectory)    // energy.json, emissions.csv (appended), power.h5
/// // or, in one call: let (model, report) = try EnergyTracker.measure(options, writingTo: dir) { t in ... }
/// ```
///
/// A background thread samples every meter each `options.interval` seconds (1 s by default);
/// phase boundaries, `start` and `stop` take a sample too, so a phase's energy is the difference
/// of two readings, exact for counters however short the phase. Sampling reads a few small
/// kernel files, so it costs microseconds per second (see `greenprune-bench energy`).
/// Fallbacks (RAPL unreadable, no GPU library) are explained once on stderr and in the report.
public final class EnergyTracker {
    public let options: EnergyOptions
    public let setup: MeterSetup
    public let runID: UUID
    private let intensity: CarbonIntensity
    private let proc: ProcFS
    private let lock = NSLock()
    private var t0 = 0.0
    private var times: [Double] = []
    private var rows: [[Double]] = []
    private var openPhases: [Int: (name: String, sample: Int)] = [:]
    private var closedPhases: [(name: String, start: Int, end: Int)] = []
    private var nextPhaseID = 0
    private var notes: [String] = []
    private var ramUsed: [Double] = [], ramPercent: [Double] = []
    /// Machine CPU ticks at the previous background sample, and the busy share of each interval
    /// between background samples, % (CodeCarbon's `cpu_utilization_percent` is their mean).
    private var ticksAtLastTick: (busy: UInt64, total: UInt64)?
    private var cpuLoadSamples: [Double] = []
    private enum State { case idle, running, stopping, stopped }
    private var state = State.idle
    private let wake = NSCondition()
    private var stopping = false
    private let sampler = DispatchSemaphore(value: 0)
    private var thread: Thread?

    /// Chooses meters (see `EnergyMeterFactory.make`) for this machine; throws for impossible
    /// options or a requested meter that cannot be used.
    public init(_ options: EnergyOptions = EnergyOptions(), host: HostInfo? = nil) throws {
        try options.validate()
        self.options = options
        proc = ProcFS(root: options.procRoot)
        let host = host ?? HostInfo.detect(proc: proc)
        setup = try EnergyMeterFactory.make(options, host: host)
        intensity = CarbonIntensity.resolve(country: options.country, override: options.carbonIntensity)
        runID = UUID()
        if options.announce { EnergyTracker.announce(setup.notes) }
    }

    /// Starts metering and the background sampler.
    public func start() throws {
        lock.lock()
        defer { lock.unlock() }
        guard state == .idle else { throw InputError("EnergyTracker", "start() called twice") }
        t0 = MonotonicClock.now()
        for m in setup.meters { try m.start(at: t0) }
        ticksAtLastTick = try? proc.machineTicks()
        times = [0]
        rows = [Array(repeating: 0, count: setup.channels.count)]
        sampleMemory()
        state = .running
        // The thread holds the tracker only while it samples, so a tracker dropped without
        // stop() is freed and its thread ends at the next tick.
        let t = Thread { [weak self] in
            while true {
                guard let s = self else { return }
                guard s.waitForTick() else { s.sampler.signal(); return }
                s.tick()
            }
        }
        t.name = "greenprune-energy-sampler"
        t.qualityOfService = .utility
        thread = t
        t.start()
    }

    /// Runs `body` as a phase named `name`: its energy is reported separately (phases may nest
    /// or repeat; each run of `body` is one entry).
    @discardableResult
    public func phase<T>(_ name: String, _ body: () throws -> T) throws -> T {
        let id = try beginPhase(name)
        defer { endPhase(id) }
        return try body()
    }

    /// Opens a phase; pass the returned id to `endPhase`. For spans that are not one closure.
    public func beginPhase(_ name: String) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard state == .running else { throw InputError("EnergyTracker", "phase '\(name)' begun while the tracker is not running") }
        takeSample()
        let id = nextPhaseID
        nextPhaseID += 1
        openPhases[id] = (name, times.count - 1)
        return id
    }

    /// Closes a phase opened by `beginPhase` (unknown ids are ignored).
    public func endPhase(_ id: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard state == .running, let p = openPhases.removeValue(forKey: id) else { return }
        takeSample()
        closedPhases.append((p.name, p.sample, times.count - 1))
    }

    /// Stops the sampler, takes a last reading and returns the report (phases still open are
    /// closed here).
    public func stop() throws -> EnergyReport {
        lock.lock()
        guard state == .running else {
            lock.unlock()
            throw InputError("EnergyTracker", "stop() called on a tracker that is not running")
        }
        state = .stopping   // a second stop() now throws instead of waiting forever
        lock.unlock()
        wake.lock()
        stopping = true
        wake.broadcast()
        wake.unlock()
        sampler.wait()   // the sampler thread has exited
        lock.lock()
        defer { lock.unlock() }
        takeSample()
        for (_, p) in openPhases.sorted(by: { $0.key < $1.key }) { closedPhases.append((p.name, p.sample, times.count - 1)) }
        openPhases = [:]
        state = .stopped
        return makeReport()
    }

    /// Runs `body` under a new tracker, then writes energy.json, emissions.csv and power.h5 to
    /// `dir` (when given) and returns the body's result with the report. If `body` throws, the
    /// tracker is stopped, nothing is written, and the error is rethrown.
    public static func measure<T>(_ options: EnergyOptions, writingTo dir: URL? = nil,
                                  _ body: (EnergyTracker) throws -> T) throws -> (result: T, report: EnergyReport) {
        if let d = dir { try HDF5Library.load(for: d.appendingPathComponent("power.h5")) }
        let tracker = try EnergyTracker(options)
        try tracker.start()
        let result: T
        do {
            result = try body(tracker)
        } catch {
            _ = try? tracker.stop()
            throw error
        }
        let report = try tracker.stop()
        if let d = dir { try report.write(to: d) }
        return (result, report)
    }

    // MARK: - sampling

    /// Waits one interval; false once `stop()` has been called.
    private func waitForTick() -> Bool {
        wake.lock()
        defer { wake.unlock() }
        let deadline = Date(timeIntervalSinceNow: options.interval)
        while !stopping && wake.wait(until: deadline) {}   // spurious wake-ups: wait again
        return !stopping
    }

    private func tick() {
        lock.lock()
        defer { lock.unlock() }
        if state == .running {
            takeSample()
            sampleCPULoad()
        }
    }

    /// The machine-wide busy share since the previous background sample, as CodeCarbon's
    /// monitor takes `psutil.cpu_percent()` once per interval: only background samples count, so
    /// a run shorter than one interval reports 0 as CodeCarbon does (its history is empty).
    private func sampleCPULoad() {
        guard let e = try? proc.machineTicks() else { return }
        if let s = ticksAtLastTick, e.total > s.total, e.busy >= s.busy {
            cpuLoadSamples.append(min(max(100 * Double(e.busy &- s.busy) / Double(e.total - s.total), 0), 100))
        }
        ticksAtLastTick = e
    }

    /// Reads every meter (caller holds `lock`). A failed read keeps that meter's last values and
    /// is noted once per meter.
    private func takeSample() {
        let t = MonotonicClock.now()
        var row: [Double] = []
        row.reserveCapacity(setup.channels.count)
        var col = 0
        for m in setup.meters {
            let k = m.channels.count
            do {
                let v = try m.read(at: t)
                row.append(contentsOf: v.count == k ? v : Array(rows.last?[col..<col + k] ?? []))
            } catch {
                row.append(contentsOf: rows.last?[col..<col + k] ?? [])
                let note = "read failed for \(m.channels.map(\.name).joined(separator: ",")): \((error as? LocalizedError)?.errorDescription ?? "\(error)")"
                if !notes.contains(note), notes.count < 50 { notes.append(note) }
            }
            col += k
        }
        times.append(t - t0)
        rows.append(row)
        sampleMemory()
    }

    private func sampleMemory() {
        guard let m = try? proc.memory(), m.total > 0 else { return }
        ramUsed.append((m.total - m.available) / 1_073_741_824)
        ramPercent.append(100 * (m.total - m.available) / m.total)
    }

    // MARK: - report

    private func components(from a: Int, to b: Int) -> [ComponentEnergy] {
        let chans = setup.channels
        let dt = times[b] - times[a]
        return EnergyComponent.allCases.compactMap { comp in
            let idx = chans.indices.filter { chans[$0].component == comp }
            guard !idx.isEmpty else { return nil }
            let j = idx.reduce(0.0) { $0 + rows[b][$1] - rows[a][$1] }
            return ComponentEnergy(component: comp, energyJ: j, energyKWh: j / 3.6e6 * options.pue,
                                   averagePowerW: dt > 0 ? j / dt : 0, methods: idx.map { chans[$0].method },
                                   isEstimate: idx.contains { chans[$0].isEstimate })
        }
    }

    private func makeReport() -> EnergyReport {
        let last = times.count - 1
        let comps = components(from: 0, to: last)
        let kwh = comps.reduce(0) { $0 + $1.energyKWh }
        let phases = closedPhases.map { p -> PhaseEnergy in
            let c = components(from: p.start, to: p.end)
            let e = c.reduce(0) { $0 + $1.energyKWh }
            return PhaseEnergy(name: p.name, startS: times[p.start], endS: times[p.end], components: c,
                               energyKWh: e, emissionsKg: intensity.kilograms(forKWh: e))
        }
        var allNotes = setup.notes + notes
        for m in setup.meters { allNotes += m.notes }
        let cpuLoad = mean(cpuLoadSamples)
        let chans = setup.channels
        let fmt = DateFormatter()
        fmt.locale = Locale(identifier: "en_US_POSIX")
        fmt.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return EnergyReport(
            runID: runID.uuidString.lowercased(), projectName: options.projectName, experimentID: options.experimentID,
            timestamp: fmt.string(from: Date()), durationS: times[last], meterChoice: options.meter,
            trackingMode: options.trackingMode, pue: options.pue, carbonIntensity: intensity,
            energyKWh: kwh, emissionsKg: intensity.kilograms(forKWh: kwh),
            isEstimate: chans.contains { $0.isEstimate }, components: comps,
            channels: chans.indices.map { ChannelEnergy(channel: chans[$0], energyJ: rows[last][$0]) },
            phases: phases, notes: allNotes, host: setup.host, cpuPower: setup.cpuSpec, gpuNames: setup.gpuNames,
            cpuUtilizationPercent: cpuLoad, ramUtilizationPercent: mean(ramPercent), ramUsedGB: mean(ramUsed),
            samples: times.count, trace: PowerTrace(channels: chans, timeS: times, energyJ: rows))
    }

    private func mean(_ v: [Double]) -> Double { v.isEmpty ? 0 : v.reduce(0, +) / Double(v.count) }

    // MARK: - announcing fallbacks once per process

    private static let announceLock = NSLock()
    nonisolated(unsafe) private static var announced = Set<String>()

    static func announce(_ notes: [String]) {
        announceLock.lock()
        defer { announceLock.unlock() }
        for n in notes where !announced.contains(n) {
            announced.insert(n)
            FileHandle.standardError.write(Data("energy: \(n)\n".utf8))
        }
    }
}
