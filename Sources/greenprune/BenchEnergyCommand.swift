import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune bench-energy`: how much the tracker slows a CPU-bound workload.
///
/// Calibrates a single-threaded integer/float loop to `--seconds`/2, then runs it untracked,
/// tracked, tracked, untracked (ABBA, so drift in machine load cancels to first order) and prints
/// tracked/untracked wall time. The target is a ratio below 1.01.
struct BenchEnergy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-energy",
        abstract: "Measure the tracker's overhead on a CPU-bound workload (wall-time ratio)."
    )

    @Option(help: "Seconds of workload per variant (tracked and untracked each get this much).")
    var seconds: Double = 30
    @Option(help: "Sampler interval in seconds for the tracked runs.")
    var interval: Double = 1.0
    @Option(help: "auto | rapl | nvml | estimate | none.")
    var energyMeter: MeterChoice = .auto

    func validate() throws {
        guard seconds >= 1, seconds <= 3600 else { throw ValidationError("--seconds must be between 1 and 3600") }
        guard interval >= 0.01 else { throw ValidationError("--interval must be at least 0.01 s") }
    }

    func run() throws {
        // Calibrate: grow the work until one call takes >= 0.5 s, then scale to seconds/2.
        var units = 1 << 20
        var t = 0.0
        while true {
            t = time { _ = BenchEnergy.work(units) }
            if t >= 0.5 { break }
            units *= 2
        }
        units = max(Int(Double(units) * (seconds / 2) / t), 1)

        var options = EnergyOptions()
        options.interval = interval
        options.meter = energyMeter
        options.announce = false
        var plain = 0.0, tracked = 0.0
        var samples = 0
        var checksum = 0.0
        for variant in [false, true, true, false] {
            if variant {
                let tracker = try EnergyTracker(options)
                try tracker.start()
                tracked += time { checksum += BenchEnergy.work(units) }
                let r = try tracker.stop()
                samples += r.samples
            } else {
                plain += time { checksum += BenchEnergy.work(units) }
            }
        }
        let ratio = tracked / plain
        print(String(format: "untracked %.3f s, tracked %.3f s (%d samples at %.3g s), ratio %.4f (%+.2f%%) %@",
                     plain, tracked, samples, interval, ratio, (ratio - 1) * 100, ratio < 1.01 ? "OK (< 1%)" : "OVER 1%"))
        if checksum == 42 { print("") }   // keep the work observable
    }

    private func time(_ body: () -> Void) -> Double {
        let a = MonotonicClock.now()
        body()
        return MonotonicClock.now() - a
    }

    /// A dependent chain of xorshift steps and float adds: pure CPU, no memory traffic.
    @inline(never)
    static func work(_ n: Int) -> Double {
        var x: UInt64 = 0x9E3779B97F4A7C15
        var acc = 0.0
        for _ in 0..<n {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            acc += Double(x & 0xFFFF) * 1e-9
        }
        return acc
    }
}
