import Foundation

/// Thermal design power of common server, desktop and laptop CPUs, for the CPU estimate.
///
/// Written for GreenPrune from the manufacturers' specification pages: Intel ARK
/// (ark.intel.com, "TDP" or, from 12th-gen Core on, "Processor Base Power") and AMD's product
/// pages (amd.com/en/products/processors, "Default TDP"), read 2024. One row per model, TDP per
/// socket in watts. A model missing here is estimated at 4 W per thread, as CodeCarbon does.
public enum CPUPowerTable {
    public struct Entry: Sendable {
        public let name: String
        public let tdpWatts: Double
        public let source: String
    }

    static let ark = "Intel ARK"
    static let amd = "AMD product page"

    public static let entries: [Entry] = [
        // Intel Xeon Scalable, 4th gen (Sapphire Rapids)
        Entry(name: "Intel Xeon Platinum 8480+", tdpWatts: 350, source: ark),
        Entry(name: "Intel Xeon Platinum 8468", tdpWatts: 350, source: ark),
        Entry(name: "Intel Xeon Gold 6430", tdpWatts: 270, source: ark),
        // 3rd gen (Ice Lake)
        Entry(name: "Intel Xeon Platinum 8380", tdpWatts: 270, source: ark),
        Entry(name: "Intel Xeon Platinum 8360Y", tdpWatts: 250, source: ark),
        Entry(name: "Intel Xeon Platinum 8358", tdpWatts: 250, source: ark),
        Entry(name: "Intel Xeon Gold 6342", tdpWatts: 230, source: ark),
        Entry(name: "Intel Xeon Gold 6338", tdpWatts: 205, source: ark),
        Entry(name: "Intel Xeon Silver 4314", tdpWatts: 135, source: ark),
        // 2nd gen (Cascade Lake) and 1st gen (Skylake)
        Entry(name: "Intel Xeon Platinum 8280", tdpWatts: 205, source: ark),
        Entry(name: "Intel Xeon Platinum 8268", tdpWatts: 205, source: ark),
        Entry(name: "Intel Xeon Gold 6248R", tdpWatts: 205, source: ark),
        Entry(name: "Intel Xeon Gold 6248", tdpWatts: 150, source: ark),
        Entry(name: "Intel Xeon Gold 6226R", tdpWatts: 150, source: ark),
        Entry(name: "Intel Xeon Gold 6230", tdpWatts: 125, source: ark),
        Entry(name: "Intel Xeon Gold 6148", tdpWatts: 150, source: ark),
        Entry(name: "Intel Xeon Gold 6138", tdpWatts: 125, source: ark),
        Entry(name: "Intel Xeon Gold 5220", tdpWatts: 125, source: ark),
        Entry(name: "Intel Xeon Gold 5218", tdpWatts: 125, source: ark),
        Entry(name: "Intel Xeon Silver 4216", tdpWatts: 100, source: ark),
        Entry(name: "Intel Xeon Silver 4214", tdpWatts: 85, source: ark),
        Entry(name: "Intel Xeon Silver 4210", tdpWatts: 85, source: ark),
        // Xeon E5/E3 (Haswell, Broadwell, Ivy Bridge)
        Entry(name: "Intel Xeon E5-2699 v4", tdpWatts: 145, source: ark),
        Entry(name: "Intel Xeon E5-2698 v4", tdpWatts: 135, source: ark),
        Entry(name: "Intel Xeon E5-2690 v4", tdpWatts: 135, source: ark),
        Entry(name: "Intel Xeon E5-2680 v4", tdpWatts: 120, source: ark),
        Entry(name: "Intel Xeon E5-2650 v4", tdpWatts: 105, source: ark),
        Entry(name: "Intel Xeon E5-2630 v4", tdpWatts: 85, source: ark),
        Entry(name: "Intel Xeon E5-2620 v4", tdpWatts: 85, source: ark),
        Entry(name: "Intel Xeon E5-2620 v3", tdpWatts: 85, source: ark),
        Entry(name: "Intel Xeon E3-1240 V2", tdpWatts: 69, source: ark),
        // Intel Core desktop and laptop
        Entry(name: "Intel Core i9-13900K", tdpWatts: 125, source: ark),
        Entry(name: "Intel Core i9-12900K", tdpWatts: 125, source: ark),
        Entry(name: "Intel Core i7-12700K", tdpWatts: 125, source: ark),
        Entry(name: "Intel Core i5-12400", tdpWatts: 65, source: ark),
        Entry(name: "Intel Core i7-10700", tdpWatts: 65, source: ark),
        Entry(name: "Intel Core i7-9700K", tdpWatts: 95, source: ark),
        Entry(name: "Intel Core i7-8700K", tdpWatts: 95, source: ark),
        Entry(name: "Intel Core i7-1165G7", tdpWatts: 28, source: ark),
        Entry(name: "Intel Core i5-8250U", tdpWatts: 15, source: ark),
        // AMD EPYC
        Entry(name: "AMD EPYC 9654", tdpWatts: 360, source: amd),
        Entry(name: "AMD EPYC 9554", tdpWatts: 360, source: amd),
        Entry(name: "AMD EPYC 8024P", tdpWatts: 90, source: amd),
        Entry(name: "AMD EPYC 7763", tdpWatts: 280, source: amd),
        Entry(name: "AMD EPYC 7742", tdpWatts: 225, source: amd),
        Entry(name: "AMD EPYC 7713", tdpWatts: 225, source: amd),
        Entry(name: "AMD EPYC 7702", tdpWatts: 200, source: amd),
        Entry(name: "AMD EPYC 7443", tdpWatts: 200, source: amd),
        Entry(name: "AMD EPYC 7502", tdpWatts: 180, source: amd),
        Entry(name: "AMD EPYC 7302", tdpWatts: 155, source: amd),
        // AMD Ryzen and Threadripper
        Entry(name: "AMD Ryzen Threadripper 3990X", tdpWatts: 280, source: amd),
        Entry(name: "AMD Ryzen Threadripper 1950X", tdpWatts: 180, source: amd),
        Entry(name: "AMD Ryzen 9 7950X", tdpWatts: 170, source: amd),
        Entry(name: "AMD Ryzen 9 5950X", tdpWatts: 105, source: amd),
        Entry(name: "AMD Ryzen 9 3900X", tdpWatts: 105, source: amd),
        Entry(name: "AMD Ryzen 7 7700X", tdpWatts: 105, source: amd),
        Entry(name: "AMD Ryzen 7 5800X", tdpWatts: 105, source: amd),
        Entry(name: "AMD Ryzen 5 5600X", tdpWatts: 65, source: amd),
        Entry(name: "AMD Ryzen 7 PRO 5850U", tdpWatts: 15, source: amd),
    ]

    /// Lower-cased tokens of a CPU brand string without trademark marks, clock speed and filler
    /// words: `Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz` → `intel xeon gold 6248`,
    /// `AMD EPYC 7763 64-Core Processor` → `amd epyc 7763`.
    public static func normalize(_ model: String) -> [String] {
        var s = model.lowercased()
        for mark in ["(r)", "(tm)", "®", "™"] { s = s.replacingOccurrences(of: mark, with: " ") }
        if let at = s.range(of: "@") { s = String(s[..<at.lowerBound]) }
        return s.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init).filter { t in
            !(t == "cpu" || t == "processor" || t.hasSuffix("-core") || t.hasSuffix("ghz"))
        }
    }

    /// The table row for `model`: an exact match of the normalised names, else the unique
    /// longest row whose tokens all appear in the model's tokens; nil when none or a tie.
    public static func lookup(_ model: String) -> Entry? {
        let m = normalize(model)
        guard !m.isEmpty else { return nil }
        if let e = entries.first(where: { normalize($0.name) == m }) { return e }
        let tokens = Set(m)
        let hits = entries.filter { Set(normalize($0.name)).isSubset(of: tokens) }
        guard let best = hits.max(by: { normalize($0.name).count < normalize($1.name).count }) else { return nil }
        let ties = hits.filter { normalize($0.name).count == normalize(best.name).count }
        return ties.count == 1 ? best : nil
    }
}

/// The CPU power an estimate assumes, and how it was chosen.
public struct CPUPowerSpec: Codable, Equatable, Sendable {
    /// Watts at 100 % load for the whole machine (all sockets).
    public var tdpWatts: Double
    /// How: `table: Intel Xeon Gold 6248 (Intel ARK) 150 W x 2 sockets`, `unknown model: 4 W x 8 threads`,
    /// `undetected CPU: 85 W`, `--cpu-tdp`.
    public var source: String

    enum CodingKeys: String, CodingKey { case tdpWatts = "tdp_w", source }

    public init(tdpWatts: Double, source: String) {
        self.tdpWatts = tdpWatts
        self.source = source
    }

    /// CodeCarbon's choice: the table's TDP × sockets for a known model, 4 W per thread for an
    /// unknown one, 85 W when the model cannot be read; `override` wins.
    public static func resolve(host: HostInfo, override: Double? = nil) -> CPUPowerSpec {
        if let w = override { return CPUPowerSpec(tdpWatts: w, source: "--cpu-tdp \(fmt(w)) W") }
        guard let model = host.cpuModel else {
            return CPUPowerSpec(tdpWatts: PowerModel.undetectedCPUWatts,
                                source: "undetected CPU model: \(fmt(PowerModel.undetectedCPUWatts)) W")
        }
        if let e = CPUPowerTable.lookup(model) {
            return CPUPowerSpec(tdpWatts: e.tdpWatts * Double(host.sockets),
                                source: "table: \(e.name) (\(e.source)) \(fmt(e.tdpWatts)) W x \(host.sockets) socket(s)")
        }
        let w = PowerModel.wattsPerThread * Double(host.threads)
        return CPUPowerSpec(tdpWatts: w, source: "model '\(model)' not in table: \(fmt(PowerModel.wattsPerThread)) W x \(host.threads) threads")
    }
}

/// Formats watts without a trailing `.0`.
func fmt(_ w: Double) -> String {
    w == w.rounded() && abs(w) < 1e15 ? String(Int(w)) : String(format: "%.3g", w)
}
