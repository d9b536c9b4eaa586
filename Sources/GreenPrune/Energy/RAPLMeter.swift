import Foundation

/// One RAPL power zone found in the powercap tree (`/sys/class/powercap/intel-rapl:0`, …).
public struct RAPLDomain: Equatable, Sendable {
    /// The zone's `name` file: `package-0`, `core`, `uncore`, `dram`, `psys`.
    public var name: String
    /// The zone directory, e.g. `/sys/class/powercap/intel-rapl:0`.
    public var path: String
    /// The directory's basename, e.g. `intel-rapl:0` or `intel-rapl-mmio:0:0`.
    public var zone: String
    /// `max_energy_range_uj`: the value after which `energy_uj` wraps to 0 (nil when missing).
    public var maxEnergyRangeUJ: UInt64?
    /// True for zones under the MMIO interface (`intel-rapl-mmio`), which mirror MSR zones.
    public var isMMIO: Bool

    public var energyFile: String { path + "/energy_uj" }
}

/// What `RAPLMeter.discover` found under a powercap root.
public struct RAPLDiscovery: Sendable {
    /// Readable zones chosen for measuring (packages, or psys, plus DRAM when asked).
    public var domains: [RAPLDomain]
    /// `energy_uj` files that exist but could not be read, with the reason.
    public var unreadable: [(path: String, reason: String)]
    /// Zones left out as duplicates (an MMIO zone with the same name as an MSR zone).
    public var droppedDuplicates: [String]
    /// Whether any `intel-rapl*` zone exists at all under the root.
    public var treeExists: Bool

    /// One line saying why RAPL cannot be used, or nil when it can.
    public var problem: String? {
        if !domains.isEmpty { return nil }
        if let first = unreadable.first {
            return "\(first.path) exists but is not readable (\(first.reason)): since the kernel fix for CVE-2020-8694 (Linux 5.10) RAPL energy counters are root-only; run as root or grant read access (sudo chmod a+r /sys/class/powercap/intel-rapl*/energy_uj)"
        }
        if treeExists { return "the powercap tree has no readable RAPL package or psys zone" }
        return "no RAPL powercap zones (intel-rapl*) found"
    }
}

/// Which RAPL zones a meter sums.
public enum RAPLSelection: String, Sendable {
    /// `package-N` zones (cores + uncore of each socket; DRAM is a separate zone).
    case packages
    /// The `psys` platform zone (SoC + chipset, laptops/desktops), falling back to packages.
    case psys
    /// The `dram` zones, for RAM energy.
    case dram
}

/// CPU (or DRAM) energy from Intel/AMD RAPL counters through the Linux powercap tree
/// (`/sys/class/powercap/intel-rapl*`, AMD since Linux 5.8 uses the same names).
///
/// Each zone's `energy_uj` is a cumulative µJ counter that wraps to 0 after
/// `max_energy_range_uj`; a read that is lower than the previous one is a wrap, and the delta is
/// `(max − previous) + current`. With a 1 s sampler a counter cannot wrap twice between reads
/// (the range is ~262 kJ, over 20 minutes at 200 W). When `max_energy_range_uj` is missing, a
/// backward step is counted as `current` µJ only (a lower bound) and noted, rather than the
/// negative delta CodeCarbon would produce.
public final class RAPLMeter: EnergyMeter {
    public let domains: [RAPLDomain]
    public let channels: [MeterChannel]
    public private(set) var notes: [String] = []
    private let reader: SysfsReader
    private var last: [UInt64]
    private var totalUJ: [UInt64]

    /// Measures `domains`, each a channel of `component` named after the zone's `name`.
    public init(domains: [RAPLDomain], component: EnergyComponent = .cpu,
                reader: @escaping SysfsReader = SysfsFile.read) {
        self.domains = domains
        self.reader = reader
        self.channels = domains.map {
            MeterChannel(name: $0.name, component: component, method: "rapl:\($0.name)", isEstimate: false)
        }
        last = Array(repeating: 0, count: domains.count)
        totalUJ = Array(repeating: 0, count: domains.count)
    }

    public func start(at time: Double) throws {
        for (i, d) in domains.enumerated() {
            last[i] = try SysfsFile.readUInt64(d.energyFile, using: reader)
            totalUJ[i] = 0
        }
    }

    public func read(at time: Double) throws -> [Double] {
        for (i, d) in domains.enumerated() {
            let now = try SysfsFile.readUInt64(d.energyFile, using: reader)
            totalUJ[i] &+= RAPLMeter.delta(previous: last[i], current: now, maxRange: d.maxEnergyRangeUJ) { [self] in
                let note = "\(d.energyFile): counter went backwards (\(last[i]) -> \(now) uJ) and max_energy_range_uj is missing; counted \(now) uJ for that interval (a lower bound)"
                if notes.count < 20 { notes.append(note) }
            }
            last[i] = now
        }
        return totalUJ.map { Double($0) * 1e-6 }
    }

    /// The µJ consumed between two reads of a counter that wraps after `maxRange`.
    /// `onUnknownWrap` is called when the counter went backwards and the range is unknown.
    public static func delta(previous: UInt64, current: UInt64, maxRange: UInt64?,
                             onUnknownWrap: () -> Void = {}) -> UInt64 {
        if current >= previous { return current - previous }
        guard let m = maxRange, m >= previous else {
            onUnknownWrap()
            return current
        }
        return (m - previous) + current
    }

    /// Finds RAPL zones under `root` (default `/sys/class/powercap`).
    ///
    /// Zones are the `intel-rapl:*` and `intel-rapl-mmio:*` directories, either flat under the
    /// root (as sysfs lists them) or nested under `intel-rapl/` (the control type's directory).
    /// An MMIO zone whose `name` matches an MSR zone is the same counter and is dropped.
    public static func discover(root: URL = URL(fileURLWithPath: "/sys/class/powercap"),
                                selection: RAPLSelection = .packages,
                                reader: @escaping SysfsReader = SysfsFile.read) -> RAPLDiscovery {
        let fm = FileManager.default
        var zoneDirs: [String: String] = [:]   // basename -> path (first seen wins)
        func scan(_ dir: String, depth: Int) {
            guard depth <= 3, let entries = try? fm.contentsOfDirectory(atPath: dir) else { return }
            for e in entries.sorted() where e.hasPrefix("intel-rapl") {
                let p = dir + "/" + e
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: p, isDirectory: &isDir), isDir.boolValue else { continue }
                if e.contains(":") && zoneDirs[e] == nil { zoneDirs[e] = p }
                scan(p, depth: depth + 1)
            }
        }
        scan(root.path, depth: 0)

        var readable: [RAPLDomain] = []
        var unreadable: [(String, String)] = []
        for (zone, path) in zoneDirs.sorted(by: { zoneOrder($0.key, $1.key) }) {
            let energy = path + "/energy_uj"
            guard fm.fileExists(atPath: energy) else { continue }
            let name = ((try? reader(path + "/name")) ?? zone).trimmingCharacters(in: .whitespacesAndNewlines)
            do {
                _ = try SysfsFile.readUInt64(energy, using: reader)
            } catch SysfsError.permissionDenied {
                unreadable.append((energy, "permission denied"))
                continue
            } catch {
                unreadable.append((energy, (error as? LocalizedError)?.errorDescription ?? "\(error)"))
                continue
            }
            let maxRange = try? SysfsFile.readUInt64(path + "/max_energy_range_uj", using: reader)
            readable.append(RAPLDomain(name: name.isEmpty ? zone : name, path: path, zone: zone,
                                       maxEnergyRangeUJ: maxRange, isMMIO: zone.hasPrefix("intel-rapl-mmio")))
        }

        // Drop MMIO mirrors of MSR zones (same name), keep MMIO-only zones.
        let msrNames = Set(readable.filter { !$0.isMMIO }.map(\.name))
        let dropped = readable.filter { $0.isMMIO && msrNames.contains($0.name) }.map(\.zone)
        let unique = readable.filter { !($0.isMMIO && msrNames.contains($0.name)) }

        let packages = unique.filter { $0.name.lowercased().hasPrefix("package") }
        let chosen: [RAPLDomain]
        switch selection {
        case .packages: chosen = packages.isEmpty ? unique.filter { $0.name == "psys" } : packages
        case .psys:
            let psys = unique.filter { $0.name == "psys" }
            chosen = psys.isEmpty ? packages : psys
        case .dram: chosen = unique.filter { $0.name.lowercased() == "dram" }
        }
        // Two DRAM zones (one per socket) share the name `dram`: make channel names unique.
        var seen: [String: Int] = [:]
        let named = chosen.map { d -> RAPLDomain in
            var d = d
            let k = seen[d.name, default: 0]
            seen[d.name] = k + 1
            if k > 0 || chosen.filter({ $0.name == d.name }).count > 1 { d.name = "\(d.name)-\(d.zone)" }
            return d
        }
        return RAPLDiscovery(domains: named, unreadable: unreadable, droppedDuplicates: dropped,
                             treeExists: !zoneDirs.isEmpty)
    }

    /// Orders zone names numerically (`intel-rapl:2` before `intel-rapl:10`), MSR before MMIO.
    static func zoneOrder(_ a: String, _ b: String) -> Bool {
        func key(_ s: String) -> (Int, [Int]) {
            let mmio = s.hasPrefix("intel-rapl-mmio") ? 1 : 0
            let nums = s.split(separator: ":").dropFirst().map { Int($0) ?? 0 }
            return (mmio, nums)
        }
        let (ma, na) = key(a), (mb, nb) = key(b)
        if ma != mb { return ma < mb }
        return na.lexicographicallyPrecedes(nb)
    }
}
