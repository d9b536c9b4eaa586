import Foundation

/// The part of the machine an energy figure is about; the three columns CodeCarbon reports.
public enum EnergyComponent: String, Codable, CaseIterable, Sendable {
    case cpu, gpu, ram
}

/// One quantity a meter reports: a RAPL package, one GPU, the RAM estimate.
public struct MeterChannel: Codable, Equatable, Sendable {
    /// Short name, unique within a tracker: `package-0`, `gpu0`, `ram`.
    public var name: String
    public var component: EnergyComponent
    /// How the figure is obtained, e.g. `rapl:package-0`, `nvml:total-energy`,
    /// `nvml:power-trapezoid`, `estimate:cpu_load tdp=85 W`, `estimate:ram dimms=2 power=10 W`.
    public var method: String
    /// True when the figure comes from a model (TDP, DIMM count) rather than a hardware counter.
    public var isEstimate: Bool

    enum CodingKeys: String, CodingKey { case name, component, method, isEstimate = "estimate" }

    public init(name: String, component: EnergyComponent, method: String, isEstimate: Bool) {
        self.name = name
        self.component = component
        self.method = method
        self.isEstimate = isEstimate
    }
}

/// A source of energy figures: hardware counters (RAPL, NVML) or a power model (estimates).
///
/// The tracker calls `start(at:)` once, then `read(at:)` at every sample with a monotonic time
/// in seconds (`MonotonicClock.now()`); each read returns, per channel, the joules consumed since
/// `start`. Counters turn deltas into that running sum (handling wrap-around); power models
/// integrate their power over the time between reads. Reads are never concurrent (the tracker
/// serialises them).
public protocol EnergyMeter: AnyObject {
    /// What this meter reports, in the order of `read`'s result.
    var channels: [MeterChannel] { get }
    /// Takes the baseline reading; energy is counted from here.
    func start(at time: Double) throws
    /// Joules per channel consumed since `start`, read at `time` (seconds, same clock as `start`).
    func read(at time: Double) throws -> [Double]
    /// Things a user should know about the figures (a counter that went backwards without a
    /// known range, a device that failed a read); one line each.
    var notes: [String] { get }
}

/// Which meters a tracker uses (`--energy-meter`).
public enum MeterChoice: String, Codable, CaseIterable, Sendable {
    /// RAPL for the CPU if readable, else an estimate; NVML for GPUs when present; RAM estimated.
    case auto
    /// RAPL for the CPU, or an error saying why it cannot be read.
    case rapl
    /// NVML for the GPUs, or an error; CPU from RAPL if readable, else estimated.
    case nvml
    /// CodeCarbon's estimates for CPU and RAM, whatever counters exist.
    case estimate
    /// No meters: wall time only (energies are zero).
    case none
}

/// Whose consumption an estimate attributes (`--tracking-mode`, as CodeCarbon's `tracking_mode`).
public enum TrackingMode: String, Codable, CaseIterable, Sendable {
    /// The whole machine: CPU power from the machine's load.
    case machine
    /// This process and its children: CPU power from their share of CPU time.
    case process
}

/// A monotonic clock in seconds (CLOCK_MONOTONIC), immune to wall-clock changes.
public enum MonotonicClock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
