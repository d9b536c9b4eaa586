import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune-bench energy`: how much the tracker slows a CPU-bound workload.
///
/// Calibrates a single-threaded integer/float loop, then runs `--seconds` of it untracked and
/// `--seconds` tracked, split into `--chunks` pairs in alternating order (AB BA AB …, so drift in
/// the machine's load cancels to first order), and prints tracked/untracked wall time (target
/// below 1.01), the median of the per-pair ratios, the workload thread's CPU-time ratio, and the
/// sampler's own CPU cost per sample.
struct EnergyBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "energy",
        abstract: "Measure the tracker's overhead on a CPU-bound workload (wall-time ratio)."
    )

    @Option(help: "Seconds of workload per variant (tracked and untracked each get this much).")
    var seconds: Double = 30
    @Option(help: "Pairs (untracked, tracked) the workload is split into.")
    var chunks: Int = 6
    @Option(help: "Sampler interval in seconds for the tracked runs.")
    var interval: Double = 1.0
    @Option(help: "auto | rapl | nvml | estimate | none.")
    var energyMeter: MeterChoice = .auto

    func validate() throws {
        guard seconds >= 1, seconds <= 3600 else { throw ValidationError("--seconds must be between 1 and 3600") }
        guard chunks >= 1, chunks <= 1000 else { throw ValidationError("--chunks must be between 1 and 1000") }
        guard interval >= 0.01 else { throw ValidationError("--interval must be at least 0.01 s") }
    }

    func run() throws {
        // Calibrate: grow the work until one call takes >= 0.5 s, then scale to one chunk.
        var units = 1 << 20
        var t = 0.0
        while true {
            t = time { _ = EnergyBench.work(units) }.wall
            if t >= 0.5 { break }
            units *= 2
        }
        units = max(Int(Double(units) * (seconds / Double(chunks)) / t), 1)

        var options = EnergyOptions()
        options.interval = interval
        options.meter = energyMeter
        options.announce = false
        var plain = 0.0, tracked = 0.0, plainCPU = 0.0, trackedCPU = 0.0
        var pairRatios: [Double] = []
        var samples = 0
        var checksum = 0.0
        for pair in 0..<chunks {
            var a = 0.0, b = 0.0
            for isTracked in (pair % 2 == 0 ? [false, true] : [true, false]) {
                if isTracked {
                    let tracker = try EnergyTracker(options)
                    try tracker.start()
                    let m = time { checksum += EnergyBench.work(units) }
                    samples += try tracker.stop().samples
                    (b, tracked, trackedCPU) = (m.wall, tracked + m.wall, trackedCPU + m.cpu)
                } else {
                    let m = time { checksum += EnergyBench.work(units) }
                    (a, plain, plainCPU) = (m.wall, plain + m.wall, plainCPU + m.cpu)
                }
            }
            pairRatios.append(b / a)
        }
        let ratio = tracked / plain
        let median = pairRatios.sorted()[pairRatios.count / 2]
        print(String(format: "untracked %.3f s, tracked %.3f s (%d chunks each, %d samples at %.3g s): wall ratio %.4f (%+.2f%%) %@",
                     plain, tracked, chunks, samples, interval, ratio, (ratio - 1) * 100, ratio < 1.01 ? "OK (< 1%)" : "OVER 1%"))
        print(String(format: "median pair ratio %.4f, workload thread CPU-time ratio %.4f", median, trackedCPU / plainCPU))
        if checksum == 42 { print("") }   // keep the work observable

        // The sampler's own cost, independent of machine noise: CPU time of this process while a
        // tracker samples every 10 ms and the main thread sleeps, for a 0.5 s and a 2.5 s run; the
        // difference over the difference in samples removes fixed costs (start, stop, report).
        var fast = options
        fast.interval = 0.01
        func idleRun(_ us: UInt32) throws -> (cpu: Double, samples: Int) {
            let tracker = try EnergyTracker(fast)
            let cpu0 = Harness.processCPUSeconds()
            try tracker.start()
            usleep(us)
            let r = try tracker.stop()
            return (Harness.processCPUSeconds() - cpu0, r.samples)
        }
        _ = try idleRun(100_000)   // warm-up: first-use costs (locale data, thread pools)
        let short = try idleRun(500_000), long = try idleRun(2_500_000)
        let perSample = max(long.cpu - short.cpu, 0) / Double(max(long.samples - short.samples, 1))
        print(String(format: "sampler cost: %.1f us CPU per sample (%d vs %d samples) = %.4f%% of one core at a %.3g s interval",
                     perSample * 1e6, long.samples, short.samples, perSample / interval * 100, interval))
    }

    /// Wall seconds and this thread's CPU seconds spent in `body`.
    private func time(_ body: () -> Void) -> (wall: Double, cpu: Double) {
        func threadCPU() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
        }
        let a = MonotonicClock.now(), c = threadCPU()
        body()
        return (MonotonicClock.now() - a, threadCPU() - c)
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
