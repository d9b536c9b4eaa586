import Foundation

/// CodeCarbon v3's power models for hardware without energy counters (codecarbon
/// `external/hardware.py`, `external/ram.py`, `core/cpu.py`; methodology at
/// docs.codecarbon.io, "Methodology"). Pure functions, so tests can check them by hand.
public enum PowerModel {
    /// CPU power assumed when the CPU model cannot be read at all (CodeCarbon's `POWER_CONSTANT`).
    public static let undetectedCPUWatts = 85.0
    /// Per-thread power for a CPU model missing from the TDP table (`DEFAULT_POWER_PER_CORE`).
    public static let wattsPerThread = 4.0
    /// Power of one DIMM on x86 (`RAM_SLOT_POWER_X86`); ARM boards use 1.5 W.
    public static let wattsPerDIMMx86 = 5.0
    public static let wattsPerDIMMArm = 1.5

    /// Machine-mode CPU power from the machine's load `load` ∈ [0, 1]:
    /// P = TDP · (0.1 + 0.9 · load³) — a 10 % idle floor and a cubic rise to TDP at full load.
    public static func cpuLoadPower(tdp: Double, load: Double) -> Double {
        let l = min(max(load, 0), 1)
        return tdp * (0.1 + 0.9 * l * l * l)
    }

    /// Process-mode CPU power: TDP times the process tree's share of all threads' time,
    /// P = TDP · cpuSeconds / (wallSeconds · threads) (no idle floor: the idle machine is not ours).
    public static func processPower(tdp: Double, cpuSeconds: Double, wallSeconds: Double, threads: Int) -> Double {
        guard wallSeconds > 0, threads > 0 else { return 0 }
        return tdp * min(max(cpuSeconds / (wallSeconds * Double(threads)), 0), 1)
    }

    /// How many DIMMs a machine with `totalGB` GiB of RAM probably has: one below 2 GiB, two up to
    /// 16 GiB, four up to 64 GiB, eight up to 128 GiB; above that the largest common DIMM size
    /// (128…4 GiB) that still gives at least 8 DIMMs, capped at 32 DIMMs.
    public static func estimatedDIMMCount(totalGB: Double) -> Int {
        if totalGB <= 2 { return 1 }
        if totalGB <= 16 { return 2 }
        if totalGB <= 64 { return 4 }
        if totalGB <= 128 { return 8 }
        for size in [128.0, 64, 32, 16, 8, 4] where size <= totalGB / 8 {
            return min(Int((totalGB / size).rounded(.up)), 32)
        }
        return 8
    }

    /// RAM power for `totalGB` GiB: per-DIMM power with diminishing increments (DIMMs 1–4 at
    /// 100 %, 5–8 at 90 %, 9–16 at 80 %, beyond at 70 %), at least two DIMMs' worth
    /// (10 W on x86, 3 W on ARM).
    public static func ramPower(totalGB: Double, arm: Bool = false) -> Double {
        ramPower(dimms: estimatedDIMMCount(totalGB: totalGB), arm: arm)
    }

    /// RAM power for a given DIMM count (see `ramPower(totalGB:arm:)`).
    public static func ramPower(dimms n: Int, arm: Bool = false) -> Double {
        let w = arm ? wattsPerDIMMArm : wattsPerDIMMx86
        let floor = arm ? 3.0 : 2 * w
        let tiers: [(upTo: Int, factor: Double)] = [(4, 1.0), (8, 0.9), (16, 0.8), (Int.max, 0.7)]
        var total = 0.0, below = 0
        for t in tiers where n > below {
            let k = min(n, t.upTo) - below
            total += Double(k) * w * t.factor
            below = min(n, t.upTo)
        }
        return max(floor, total)
    }
}
