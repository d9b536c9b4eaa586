import Foundation

extension PowerTrace {
    /// Writes the samples as HDF5 (atomically):
    /// - `/time_s` (N) seconds since start;
    /// - `/energy_j` (N, C) joules per channel since start, cumulative;
    /// - `/power_w` (N, C) mean power over the interval ending at each sample (row 0 is 0);
    /// - `/phases/start_s`, `/phases/end_s` (P) and `/phases/energy_j` (P, C);
    /// - root attributes: `channels`, `components`, `estimate` (comma-separated; `methods` semicolon-separated), one
    ///   per column of C), `phase_names` (JSON array), `run_id`, `pue`, `energy_meter`.
    /// Energies are before PUE.
    public func write(to url: URL, report: EnergyReport) throws {
        let h5 = try HDF5Writer(url: url)
        let n = timeS.count, c = channels.count
        try h5.write("time_s", timeS, shape: [n])
        if c > 0 && n > 0 {
            try h5.write("energy_j", energyJ.flatMap { $0 }, shape: [n, c])
            try h5.write("power_w", powerW.flatMap { $0 }, shape: [n, c])
        }
        let phases = report.phases
        if !phases.isEmpty {
            try h5.write("phases/start_s", phases.map(\.startS), shape: [phases.count])
            try h5.write("phases/end_s", phases.map(\.endS), shape: [phases.count])
            if c > 0 {
                // Per-channel phase energy from the trace itself (phase bounds are samples).
                let rows = phases.map { p -> [Double] in
                    let a = timeS.firstIndex(where: { $0 >= p.startS }) ?? 0
                    let b = timeS.firstIndex(where: { $0 >= p.endS }) ?? (n - 1)
                    return (0..<c).map { energyJ[b][$0] - energyJ[a][$0] }
                }
                try h5.write("phases/energy_j", rows.flatMap { $0 }, shape: [phases.count, c])
            }
        }
        let names = (try? String(decoding: JSONEncoder().encode(phases.map(\.name)), as: UTF8.self)) ?? "[]"
        try h5.setAttribute("/", "channels", channels.map(\.name).joined(separator: ","))
        try h5.setAttribute("/", "components", channels.map(\.component.rawValue).joined(separator: ","))
        try h5.setAttribute("/", "methods", channels.map(\.method).joined(separator: ";"))
        try h5.setAttribute("/", "estimate", channels.map { $0.isEstimate ? "1" : "0" }.joined(separator: ","))
        try h5.setAttribute("/", "phase_names", names)
        try h5.setAttribute("/", "run_id", report.runID)
        try h5.setAttribute("/", "energy_meter", report.meterChoice.rawValue)
        try h5.setAttribute("/", "pue", report.pue)
        try h5.close()
    }
}
