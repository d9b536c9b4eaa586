import Foundation
import Testing
import GreenPrune

// Energy tests: fake powercap and procfs trees built here, a fake NVML library compiled here,
// formulas checked against hand calculations. Energies are compared to 1 µJ (RAPL, whose unit is
// µJ), 1 mJ (NVML counters), or 1e-9 relative (closed-form estimates).

/// A temporary directory removed when the test ends.
final class TempDir {
    let url: URL
    var path: String { url.path }
    init(_ tag: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("gp-energy-\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func write(_ rel: String, _ text: String) throws {
        let f = url.appendingPathComponent(rel)
        try FileManager.default.createDirectory(at: f.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: f, atomically: false, encoding: .utf8)
    }
}

/// A fake powercap tree: `zone` directories with `name`, `energy_uj`, `max_energy_range_uj`.
struct FakePowercap {
    let dir: TempDir
    init(_ tag: String) throws { dir = try TempDir(tag) }
    var root: URL { dir.url }

    func zone(_ zone: String, name: String, energy: UInt64, max: UInt64? = 262_143_328_850) throws {
        try dir.write("\(zone)/name", name + "\n")
        try dir.write("\(zone)/energy_uj", "\(energy)\n")
        if let m = max { try dir.write("\(zone)/max_energy_range_uj", "\(m)\n") }
    }
    func set(_ zone: String, _ energy: UInt64) throws { try dir.write("\(zone)/energy_uj", "\(energy)\n") }
}

/// A reader that denies `energy_uj` files whose path contains one of `denied`, as the kernel
/// does for non-root users; tests run as root, where chmod 000 changes nothing.
func denyingReader(_ denied: [String]) -> SysfsReader {
    return { path in
        if path.hasSuffix("energy_uj"), denied.contains(where: { path.contains($0) }) {
            throw SysfsError.permissionDenied(path)
        }
        return try SysfsFile.read(path)
    }
}

let testHost = HostInfo(cpuModel: "Intel(R) Xeon(R) Processor", threads: 4, sockets: 1, ramTotalGB: 24,
                        os: "Linux-test", machine: "x86_64")

@Suite struct EnergyRAPLTests {
    @Test func onePackageDeltaToTheMicrojoule() throws {
        let pc = try FakePowercap("one")
        try pc.zone("intel-rapl:0", name: "package-0", energy: 1_000_000)
        try pc.zone("intel-rapl:0:0", name: "core", energy: 500)
        let d = RAPLMeter.discover(root: pc.root)
        #expect(d.domains.map(\.name) == ["package-0"])   // subzones are inside the package
        let m = RAPLMeter(domains: d.domains)
        try m.start(at: 0)
        try pc.set("intel-rapl:0", 1_000_000 + 12_345_678)
        let e = try m.read(at: 1)
        #expect(abs(e[0] - 12.345678) < 1e-6)
        #expect(m.channels[0].method == "rapl:package-0")
        #expect(!m.channels[0].isEstimate)
    }

    @Test func twoPackagesAreTwoChannels() throws {
        let pc = try FakePowercap("two")
        try pc.zone("intel-rapl:0", name: "package-0", energy: 10)
        try pc.zone("intel-rapl:1", name: "package-1", energy: 20)
        try pc.zone("intel-rapl:0:0", name: "dram", energy: 30)
        let d = RAPLMeter.discover(root: pc.root)
        #expect(d.domains.map(\.name) == ["package-0", "package-1"])
        let m = RAPLMeter(domains: d.domains)
        try m.start(at: 0)
        try pc.set("intel-rapl:0", 10 + 2_000_001)
        try pc.set("intel-rapl:1", 20 + 3_000_002)
        let e = try m.read(at: 1)
        #expect(abs(e[0] - 2.000001) < 1e-9 && abs(e[1] - 3.000002) < 1e-9)
        // DRAM is selectable as its own figure.
        #expect(RAPLMeter.discover(root: pc.root, selection: .dram).domains.map(\.name) == ["dram"])
    }

    @Test func wrapBetweenTwoReadsUsesMaxEnergyRange() throws {
        let pc = try FakePowercap("wrap")
        let maxRange: UInt64 = 262_143_328_850
        try pc.zone("intel-rapl:0", name: "package-0", energy: maxRange - 1_000_000, max: maxRange)
        let m = RAPLMeter(domains: RAPLMeter.discover(root: pc.root).domains)
        try m.start(at: 0)
        try pc.set("intel-rapl:0", 2_500_000)           // wrapped: 1 J before the top, 2.5 J after
        #expect(abs(try m.read(at: 1)[0] - 3.5) < 1e-6)
        try pc.set("intel-rapl:0", 3_000_000)           // no wrap: +0.5 J
        #expect(abs(try m.read(at: 2)[0] - 4.0) < 1e-6)
        #expect(m.notes.isEmpty)
        #expect(RAPLMeter.delta(previous: 10, current: 4, maxRange: 20) == 14)
    }

    @Test func missingMaxRangeCountsALowerBoundAndSaysSo() throws {
        let pc = try FakePowercap("nomax")
        try pc.zone("intel-rapl:0", name: "package-0", energy: 5_000_000, max: nil)
        let d = RAPLMeter.discover(root: pc.root)
        #expect(d.domains.count == 1 && d.domains[0].maxEnergyRangeUJ == nil)
        let m = RAPLMeter(domains: d.domains)
        try m.start(at: 0)
        try pc.set("intel-rapl:0", 6_000_000)
        #expect(abs(try m.read(at: 1)[0] - 1.0) < 1e-6)
        try pc.set("intel-rapl:0", 250_000)             // went backwards, range unknown
        #expect(abs(try m.read(at: 2)[0] - 1.25) < 1e-6)
        #expect(m.notes.count == 1 && m.notes[0].contains("max_energy_range_uj is missing"))
    }

    @Test func unreadableEnergyFileExplainsAndFallsBack() throws {
        let pc = try FakePowercap("deny")
        try pc.zone("intel-rapl:0", name: "package-0", energy: 1)
        chmod(pc.root.appendingPathComponent("intel-rapl:0/energy_uj").path, 0)   // effective for non-root
        let reader = denyingReader(["intel-rapl:0"])                             // and for root
        let d = RAPLMeter.discover(root: pc.root, reader: reader)
        #expect(d.domains.isEmpty && d.unreadable.count == 1)
        #expect(d.problem?.contains("CVE-2020-8694") == true)

        var o = EnergyOptions()
        o.powercapRoot = pc.root.path
        o.sysfsReader = reader
        o.announce = false
        let setup = try EnergyMeterFactory.make(o, host: testHost)
        #expect(setup.channels.first { $0.component == .cpu }?.method == "estimate:cpu_load tdp=16 W")
        #expect(setup.notes.contains { $0.contains("CVE-2020-8694") && $0.contains("ESTIMATE") })
        o.meter = .rapl
        #expect(throws: InputError.self) { try EnergyMeterFactory.make(o, host: testHost) }
    }

    @Test func mmioDuplicatesAreDropped() throws {
        let pc = try FakePowercap("mmio")
        try pc.zone("intel-rapl:0", name: "package-0", energy: 100)
        try pc.zone("intel-rapl-mmio:0", name: "package-0", energy: 100)
        let d = RAPLMeter.discover(root: pc.root)
        #expect(d.domains.map(\.zone) == ["intel-rapl:0"])
        #expect(d.droppedDuplicates == ["intel-rapl-mmio:0"])
        // An MMIO-only machine still measures.
        let only = try FakePowercap("mmio-only")
        try only.zone("intel-rapl-mmio:0", name: "package-0", energy: 100)
        #expect(RAPLMeter.discover(root: only.root).domains.map(\.zone) == ["intel-rapl-mmio:0"])
    }

    @Test func nestedLayoutAndPsys() throws {
        let pc = try FakePowercap("nested")
        try pc.zone("intel-rapl/intel-rapl:0", name: "package-0", energy: 1)
        try pc.zone("intel-rapl/intel-rapl:0/intel-rapl:0:0", name: "core", energy: 1)
        try pc.zone("intel-rapl/intel-rapl:1", name: "psys", energy: 1)
        #expect(RAPLMeter.discover(root: pc.root).domains.map(\.name) == ["package-0"])
        #expect(RAPLMeter.discover(root: pc.root, selection: .psys).domains.map(\.name) == ["psys"])
        let none = try TempDir("empty")
        let d = RAPLMeter.discover(root: none.url)
        #expect(d.domains.isEmpty && !d.treeExists && d.problem?.contains("no RAPL") == true)
    }

    @Test func trackerAttributesCounterEnergyToPhases() throws {
        let pc = try FakePowercap("tracker")
        try pc.zone("intel-rapl:0", name: "package-0", energy: 0)
        try pc.zone("intel-rapl:1", name: "package-1", energy: 0)
        var o = EnergyOptions()
        o.powercapRoot = pc.root.path
        o.interval = 600   // no background sample lands inside this test
        o.ramWatts = 10
        o.country = "FRA"
        o.pue = 1.5
        o.announce = false
        let t = try EnergyTracker(o, host: testHost)
        try t.start()
        try pc.set("intel-rapl:0", 1_000_000)          // 1 J before the phase
        try t.phase("prune") {
            try pc.set("intel-rapl:0", 4_000_000)      // +3 J
            try pc.set("intel-rapl:1", 2_000_000)      // +2 J
        }
        try pc.set("intel-rapl:1", 2_500_000)          // +0.5 J after
        let r = try t.stop()
        let cpu = r.component(.cpu)
        #expect(abs(cpu.energyJ - 6.5) < 1e-6)     // 4 J on package-0, 2.5 J on package-1
        #expect(cpu.methods == ["rapl:package-0", "rapl:package-1"] && !cpu.isEstimate)
        #expect(abs(cpu.energyKWh - 6.5 / 3.6e6 * 1.5) < 1e-15)
        #expect(r.phases.count == 1 && r.phases[0].name == "prune")
        #expect(abs(r.phases[0].component(.cpu).energyJ - 5.0) < 1e-6)
        // RAM at a fixed 10 W over the run, PUE included, emissions at France's 56.039 g/kWh (CodeCarbon's table).
        let ram = r.component(.ram)
        #expect(abs(ram.energyJ - 10 * r.durationS) < 1e-6)
        #expect(ram.isEstimate && r.isEstimate)
        #expect(abs(r.emissionsKg - r.energyKWh * 0.056039) < 1e-15)
        #expect(r.carbonIntensity.countryName == "France")
    }
}

/// A fake libnvidia-ml.so.1 compiled with the system C compiler. GPU 0 has an energy counter
/// that advances 1500 mJ per call from 5000 mJ; GPU 1 has none (NVML_ERROR_NOT_SUPPORTED) and a
/// power reading of 100 W + 20 W per call.
func buildFakeNVML(_ dir: TempDir) throws -> String {
    let source = """
    typedef void *nvmlDevice_t;
    static int dev[2] = {0, 1};
    static unsigned long long energy_calls = 0;
    static unsigned int power_calls = 0;
    int nvmlInit_v2(void) { return 0; }
    int nvmlShutdown(void) { return 0; }
    int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 2; return 0; }
    int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *h) {
        if (i > 1) return 2; *h = &dev[i]; return 0; }
    int nvmlDeviceGetName(nvmlDevice_t h, char *name, unsigned int len) {
        const char *s = *(int *)h == 0 ? "Fake GPU A" : "Fake GPU B";
        unsigned int i = 0; for (; s[i] && i + 1 < len; i++) name[i] = s[i]; name[i] = 0; return 0; }
    int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t h, unsigned long long *mj) {
        if (*(int *)h != 0) return 3;
        *mj = 5000ULL + 1500ULL * energy_calls++; return 0; }
    int nvmlDeviceGetPowerUsage(nvmlDevice_t h, unsigned int *mw) {
        *mw = 100000u + 20000u * power_calls++; return 0; }
    """
    try dir.write("fake_nvml.c", source)
    let lib = dir.url.appendingPathComponent("libnvidia-ml.so.1").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["cc", "-shared", "-fPIC", "-O1", "-o", lib, dir.url.appendingPathComponent("fake_nvml.c").path]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw InputError(lib, "cc failed building the fake NVML (is a C compiler installed?)") }
    return lib
}

@Suite struct EnergyNVMLTests {
    @Test func counterDeltasAndTrapezoidsFromAFakeLibrary() throws {
        let dir = try TempDir("nvml")
        let m = try NVMLMeter(libraryPath: try buildFakeNVML(dir))
        #expect(m.deviceNames == ["Fake GPU A", "Fake GPU B"])
        #expect(m.channels.map(\.method) == ["nvml:total-energy", "nvml:power-trapezoid"])
        // Energy calls: probe 5000, start 6500, reads 8000 and 9500 mJ.
        // Power calls: start 100 W (t=10), reads 120 W (t=12) and 140 W (t=13).
        try m.start(at: 10)
        let a = try m.read(at: 12)
        #expect(abs(a[0] - 1.5) < 1e-3)                       // (8000 - 6500) mJ
        #expect(abs(a[1] - 220) < 1e-3)                       // (100 + 120) / 2 * 2 s
        let b = try m.read(at: 13)
        #expect(abs(b[0] - 3.0) < 1e-3)                       // (9500 - 6500) mJ
        #expect(abs(b[1] - 350) < 1e-3)                       // 220 + (120 + 140) / 2 * 1 s
    }

    @Test func missingLibraryIsAnErrorOrASkippedGPU() throws {
        #expect(throws: InputError.self) { try NVMLMeter(libraryPath: "/nonexistent/libnvidia-ml.so.1") }
        var o = EnergyOptions()
        o.nvmlLibrary = "/nonexistent/libnvidia-ml.so.1"
        o.powercapRoot = "/nonexistent"
        o.announce = false
        let setup = try EnergyMeterFactory.make(o, host: testHost)
        #expect(!setup.channels.contains { $0.component == .gpu })
        #expect(setup.notes.contains { $0.contains("NVML unavailable") })
        o.meter = .nvml
        #expect(throws: InputError.self) { try EnergyMeterFactory.make(o, host: testHost) }
    }

    @Test func trackerReportsGPUsInTheCSV() throws {
        let dir = try TempDir("nvml-tracker")
        var o = EnergyOptions()
        o.nvmlLibrary = try buildFakeNVML(dir)
        o.powercapRoot = "/nonexistent"
        o.interval = 600
        o.announce = false
        let t = try EnergyTracker(o, host: testHost)
        try t.start()
        let r = try t.stop()
        // One read after start: GPU 0 advanced 1500 mJ; GPU 1 integrated 100 W -> 120 W.
        #expect(abs(r.channels.first { $0.channel.name == "gpu0" }!.energyJ - 1.5) < 1e-3)
        #expect(abs(r.channels.first { $0.channel.name == "gpu1" }!.energyJ - 110 * r.durationS) < 1e-6)
        let row = EmissionsCSV.row(for: r)
        let col = { (name: String) in row[EmissionsCSV.columns.firstIndex(of: name)!] }
        #expect(col("gpu_count") == "2")
        #expect(col("gpu_model") == "Fake GPU A, Fake GPU B")
    }
}

@Suite struct EnergyEstimateTests {
    @Test func cpuLoadAndProcessFormulas() {
        // P = TDP (0.1 + 0.9 load^3)
        #expect(abs(PowerModel.cpuLoadPower(tdp: 100, load: 0.5) - 21.25) < 1e-12)
        #expect(PowerModel.cpuLoadPower(tdp: 100, load: 0) == 10)
        #expect(PowerModel.cpuLoadPower(tdp: 100, load: 1) == 100)
        // P = TDP * cpu / (wall * threads) = 85 * 3 / 8
        #expect(abs(PowerModel.processPower(tdp: 85, cpuSeconds: 3, wallSeconds: 2, threads: 4) - 31.875) < 1e-12)
    }

    @Test func dimmModel() {
        let cases: [(Double, Int)] = [(1, 1), (8, 2), (16, 2), (24, 4), (64, 4), (100, 8), (256, 8), (2048, 16), (3000, 24)]
        for (gb, n) in cases { #expect(PowerModel.estimatedDIMMCount(totalGB: gb) == n, "\(gb) GB") }
        // 5 W per DIMM, 90 % for DIMMs 5-8, 80 % for 9-16, 70 % beyond, 10 W floor.
        let watts: [(Int, Double)] = [(1, 10), (2, 10), (4, 20), (8, 38), (16, 70), (24, 98)]
        for (n, w) in watts { #expect(abs(PowerModel.ramPower(dimms: n) - w) < 1e-9, "\(n) DIMMs") }
        #expect(abs(PowerModel.ramPower(dimms: 8, arm: true) - 11.4) < 1e-9)   // 4*1.5 + 4*1.35
        #expect(PowerModel.ramPower(dimms: 1, arm: true) == 3)
    }

    @Test func tdpTableUnknownAndUndetected() {
        var h = testHost
        h.cpuModel = "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"
        h.sockets = 2
        #expect(CPUPowerSpec.resolve(host: h).tdpWatts == 300)       // 150 W x 2 sockets
        h.cpuModel = "AMD EPYC 7763 64-Core Processor"
        h.sockets = 1
        #expect(CPUPowerSpec.resolve(host: h).tdpWatts == 280)
        h.cpuModel = "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz"
        #expect(CPUPowerSpec.resolve(host: h).tdpWatts == 205)       // not confused with 6248
        h.cpuModel = "Intel(R) Xeon(R) Processor"
        #expect(CPUPowerSpec.resolve(host: h).tdpWatts == 16)        // 4 W x 4 threads
        h.cpuModel = nil
        #expect(CPUPowerSpec.resolve(host: h).tdpWatts == 85)
        #expect(CPUPowerSpec.resolve(host: h, override: 42).tdpWatts == 42)
    }

    @Test func machineLoadMeterOnAFakeProcStat() throws {
        let proc = try TempDir("proc")
        try proc.write("stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 1 1 1\n")
        let m = CPUEstimateMeter(spec: CPUPowerSpec(tdpWatts: 50, source: "test"), mode: .machine, threads: 4,
                                 proc: ProcFS(root: proc.path, ticksPerSecond: 100))
        try m.start(at: 0)
        // busy +300 user +100 system, idle +100: load = 400 / 500 = 0.8
        try proc.write("stat", "cpu  400 0 200 900 0 0 0 0 0 0\n")
        let e = try m.read(at: 2)
        let p = 50 * (0.1 + 0.9 * 0.512)
        #expect(abs(e[0] - p * 2) < 1e-9)
        #expect(m.channels[0].method == "estimate:cpu_load tdp=50 W" && m.channels[0].isEstimate)
    }

    @Test func processMeterCountsChildrenOnAFakeProc() throws {
        let proc = try TempDir("proc-tree")
        func stat(_ pid: Int, _ u: Int, _ s: Int, _ cu: Int, _ cs: Int) -> String {
            // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ... rss
            "\(pid) (my prog) R 1 1 1 0 -1 0 0 0 0 0 \(u) \(s) \(cu) \(cs) 20 0 1 0 100 1000 256 0 0\n"
        }
        try proc.write("4242/stat", stat(4242, 100, 50, 10, 0))
        try proc.write("4242/task/4242/children", "4243")
        try proc.write("4243/stat", stat(4243, 30, 10, 0, 0))
        try proc.write("4243/task/4243/children", "")
        let fs = ProcFS(root: proc.path, ticksPerSecond: 100)
        #expect(abs(try fs.treeCPUSeconds(4242) - 2.0) < 1e-12)
        let m = CPUEstimateMeter(spec: CPUPowerSpec(tdpWatts: 80, source: "test"), mode: .process, threads: 4,
                                 proc: fs, pid: 4242)
        try m.start(at: 0)
        try proc.write("4242/stat", stat(4242, 300, 50, 10, 0))     // +2 s
        try proc.write("4243/stat", stat(4243, 130, 10, 0, 0))     // +1 s
        // 3 CPU-seconds in 2 s on 4 threads: 80 W * 3 / 8 = 30 W, 60 J.
        #expect(abs(try m.read(at: 2)[0] - 60) < 1e-9)
    }

    @Test func ramMeterFixedAndModel() throws {
        let fixed = RAMEstimateMeter(fixedWatts: 12, mode: .machine, totalGB: 24)
        try fixed.start(at: 1)
        #expect(abs(try fixed.read(at: 6)[0] - 60) < 1e-12)
        let model = RAMEstimateMeter(fixedWatts: nil, mode: .machine, totalGB: 24)
        try model.start(at: 0)
        #expect(abs(try model.read(at: 3)[0] - 60) < 1e-12)      // 4 DIMMs = 20 W
        #expect(model.channels[0].method.hasPrefix("estimate:ram dimms=4 power=20 W"))
    }

    @Test func backgroundSamplerSamplesAndPhasesNest() throws {
        var o = EnergyOptions()
        o.announce = false
        o.interval = 0.02
        o.ramWatts = 7
        o.powercapRoot = "/nonexistent"
        let t = try EnergyTracker(o, host: testHost)
        try t.start()
        try t.phase("outer") {
            try t.phase("inner") { usleep(200_000) }
            usleep(100_000)
        }
        let r = try t.stop()
        // start, 2 phase begins, 2 phase ends, stop = 6 samples; the sampler adds ~15 more at 20 ms
        // (at least 3 even on a loaded machine).
        #expect(r.samples >= 9)
        #expect(r.phases.map(\.name) == ["inner", "outer"])
        let inner = r.phases[0], outer = r.phases[1]
        #expect(inner.startS >= outer.startS && inner.endS <= outer.endS)
        #expect(inner.durationS >= 0.2 && outer.durationS >= 0.3)
        // RAM at 7 W: a phase's energy is 7 W times its duration, to rounding.
        #expect(abs(outer.component(.ram).energyJ - 7 * outer.durationS) < 1e-9)
        #expect(throws: InputError.self) { try t.stop() }
    }

    @Test func carbonIntensityTableAndDefaults() {
        // CodeCarbon 3.3.2's data/private_infra/global_energy_mix.json `carbon_intensity` values.
        #expect(CarbonIntensity.resolve(country: "usa").gramsPerKWh == 369.473)
        #expect(CarbonIntensity.resolve(country: "ITA").gramsPerKWh == 330.718)
        #expect(CarbonIntensity.resolve(country: "DEU").gramsPerKWh == 380.95)
        #expect(CarbonIntensity.resolve(country: "IND").gramsPerKWh == 713.441)
        #expect(CarbonIntensity.resolve(country: "ISL").gramsPerKWh == 27.68)
        #expect(CarbonIntensity.resolve(country: "ABW").countryName == "Aruba")
        #expect(CarbonIntensity.table.count == 213)
        // CodeCarbon's world average (carbon_intensity_per_source.json) for a country it lacks.
        #expect(CarbonIntensity.resolve(country: "XYZ").gramsPerKWh == 475)
        #expect(CarbonIntensity.resolve(country: nil).gramsPerKWh == 475)
        #expect(CarbonIntensity.resolve(country: "ITA", override: 100).gramsPerKWh == 100)
        #expect(abs(CarbonIntensity.resolve(country: "FRA").kilograms(forKWh: 2) - 0.112078) < 1e-12)
    }

    /// CodeCarbon's `cpu_utilization_percent`: the mean of one machine-wide reading per sampling
    /// interval, 0.0 when none completed (a sleeping process on an idle machine, a short run).
    @Test func cpuUtilizationIsTheMeanOfIntervalReadings() throws {
        let proc = try TempDir("proc-util")
        // Replaced whole, so the sampler thread never reads half a line.
        func put(_ line: String) throws {
            try line.write(to: proc.url.appendingPathComponent("stat"), atomically: true, encoding: .utf8)
        }
        func tracker(_ interval: Double) throws -> EnergyTracker {
            var o = EnergyOptions()
            o.meter = .none
            o.announce = false
            o.interval = interval
            o.procRoot = proc.path
            return try EnergyTracker(o, host: testHost)
        }
        // Nothing ran: idle ticks only.
        try put("cpu  100 0 100 800 0 0 0 0 0 0\n")
        let idle = try tracker(0.02)
        try idle.start()
        try put("cpu  100 0 100 900 0 0 0 0 0 0\n")
        usleep(100_000)
        #expect(try idle.stop().cpuUtilizationPercent == 0.0)
        // 300 busy of 400 ticks in the intervals that saw ticks: 75 %.
        let busy = try tracker(0.02)
        try busy.start()
        try put("cpu  300 0 200 1000 0 0 0 0 0 0\n")
        usleep(100_000)
        #expect(try busy.stop().cpuUtilizationPercent == 75)
        // Stopped before its first 1 s interval: no reading, 0.0 as CodeCarbon.
        let short = try tracker(1)
        try short.start()
        try put("cpu  900 0 900 1000 0 0 0 0 0 0\n")
        usleep(50_000)
        #expect(try short.stop().cpuUtilizationPercent == 0.0)
    }

    @Test func aRunOnThisMachineSaysHowItsFiguresWereObtained() throws {
        var o = EnergyOptions()
        o.announce = false
        o.interval = 0.05
        let t = try EnergyTracker(o)
        try t.start()
        try t.phase("spin") { var x = 0.0; for i in 0..<2_000_000 { x += Double(i) }; #expect(x > 0) }
        let r = try t.stop()
        let raplReadable = !RAPLMeter.discover().domains.isEmpty
        let cpu = r.component(.cpu)
        if raplReadable {
            #expect(cpu.methods.allSatisfy { $0.hasPrefix("rapl:") } && !cpu.isEstimate)
        } else {
            // No counters here: every figure is labelled as an estimate, in the report and in words.
            #expect(cpu.isEstimate && cpu.methods.allSatisfy { $0.hasPrefix("estimate:cpu_load tdp=") })
            #expect(r.isEstimate && r.summary().contains("ESTIMATE"))
            #expect(r.notes.contains { $0.hasPrefix("CPU energy is an ESTIMATE") })
        }
        #expect(r.component(.ram).isEstimate)
        #expect(cpu.energyJ > 0 && r.samples >= 3)
    }
}

@Suite struct EnergyOutputTests {
    /// CodeCarbon 3.x's `EmissionsData` fields in order (codecarbon/output_methods/emissions_data.py).
    static let codeCarbonColumns = """
        timestamp, project_name, run_id, experiment_id, duration, emissions, emissions_rate, \
        cpu_power, gpu_power, ram_power, cpu_energy, gpu_energy, ram_energy, energy_consumed, \
        water_consumed, country_name, country_iso_code, region, cloud_provider, cloud_region, os, \
        python_version, codecarbon_version, cpu_count, cpu_model, gpu_count, gpu_model, longitude, \
        latitude, ram_total_size, tracking_mode, cpu_utilization_percent, gpu_utilization_percent, \
        ram_utilization_percent, ram_used_gb, on_cloud, pue, wue
        """.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }

    func report(_ t: TempDir) throws -> EnergyReport {
        var o = EnergyOptions()
        o.powercapRoot = t.path + "/no-powercap"
        o.announce = false
        o.interval = 0.02
        o.country = "DEU"
        var h = testHost
        h.cpuModel = "Weird, \"quoted\" CPU"
        let tr = try EnergyTracker(o, host: h)
        try tr.start()
        try tr.phase("a") { usleep(60_000) }
        return try tr.stop()
    }

    @Test func headerIsCodeCarbonsColumnList() {
        #expect(EmissionsCSV.columns.count == 38)
        #expect(EmissionsCSV.columns == Self.codeCarbonColumns)
    }

    @Test func appendWritesTheHeaderOnceAndRowsParseBack() throws {
        let t = try TempDir("csv")
        let r = try report(t)
        let url = t.url.appendingPathComponent("emissions.csv")
        try EmissionsCSV.append(EmissionsCSV.row(for: r), to: url)
        try EmissionsCSV.append(EmissionsCSV.row(for: r), to: url)
        let rows = EmissionsCSV.parse(try String(contentsOf: url, encoding: .utf8))
        #expect(rows.count == 3 && rows[0] == Self.codeCarbonColumns)
        #expect(rows[1].count == 38 && rows[2].count == 38)
        let col = { (name: String) in rows[1][Self.codeCarbonColumns.firstIndex(of: name)!] }
        #expect(col("cpu_model") == "Weird, \"quoted\" CPU")
        #expect(col("country_iso_code") == "DEU" && col("country_name") == "Germany")
        // Units: energy in kWh, duration in s, emissions in kg at 380.95 g/kWh.
        let kwh = Double(col("energy_consumed"))!
        #expect(abs(kwh - r.energyKWh) <= 1e-12 * max(kwh, 1))
        #expect(abs(Double(col("emissions"))! - kwh * 0.38095) < 1e-15)
        // What CodeCarbon 3.3.2 writes in these columns: its version (the format followed), the
        // rate at full precision; a Swift binary has no Python version.
        #expect(col("codecarbon_version") == "3.3.2" && col("python_version") == "N/A")
        #expect(Double(col("emissions_rate")) == r.emissionsKg / r.durationS)
        #expect(col("pue") == "1.0" && col("on_cloud") == "N")
        #expect(abs(Double(col("cpu_energy"))! + Double(col("ram_energy"))! - kwh) < 1e-15)
        #expect(abs(Double(col("duration"))! - r.durationS) < 1e-9)
    }

    @Test func aForeignHeaderIsKeptAsideNotAppendedTo() throws {
        let t = try TempDir("csv-foreign")
        let url = t.url.appendingPathComponent("emissions.csv")
        try "a,b\n1,2\n".write(to: url, atomically: true, encoding: .utf8)
        try EmissionsCSV.append(EmissionsCSV.row(for: try report(t)), to: url)
        let rows = EmissionsCSV.parse(try String(contentsOf: url, encoding: .utf8))
        #expect(rows.count == 2 && rows[0] == Self.codeCarbonColumns)
        let backups = try FileManager.default.contentsOfDirectory(atPath: t.path).filter { $0.hasPrefix("emissions.csv.bak-") }
        #expect(backups.count == 1)
    }

    @Test func measureWrapsABodyAndWritesTheFiles() throws {
        let t = try TempDir("measure")
        var o = EnergyOptions()
        o.announce = false
        o.meter = .none
        let (value, r) = try EnergyTracker.measure(o, writingTo: t.url) { tr in
            try tr.phase("work") { 6 * 7 }
        }
        #expect(value == 42 && r.phases.map(\.name) == ["work"])
        #expect(r.components.isEmpty && r.energyKWh == 0 && r.summary().contains("nothing metered"))
        for f in ["emissions.csv", "energy.json", "power.h5"] {
            #expect(FileManager.default.fileExists(atPath: t.url.appendingPathComponent(f).path), "\(f)")
        }
        struct Boom: Error {}
        let out = t.url.appendingPathComponent("failed")
        #expect(throws: Boom.self) { try EnergyTracker.measure(o, writingTo: out) { _ in throw Boom() } }
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func energyJSONAndPowerH5AgreeWithTheReport() throws {
        let t = try TempDir("out")
        let r = try report(t)
        let out = t.url.appendingPathComponent("run")
        try r.write(to: out)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("energy.json"))) as! [String: Any]
        #expect(json["estimate"] as? Bool == true)
        let comps = json["components"] as! [[String: Any]]
        #expect(comps.map { $0["component"] as! String } == ["cpu", "ram"])
        #expect((comps[0]["methods"] as! [String])[0].hasPrefix("estimate:cpu_load tdp="))
        let h5 = try HDF5Reader(url: out.appendingPathComponent("power.h5"))
        let n = r.samples
        #expect(try h5.shape("/time_s") == [n])
        #expect(try h5.shape("/energy_j") == [n, 2])
        let e = try h5.readDoubles("/energy_j")
        #expect(abs(e[2 * (n - 1)] - r.channels[0].energyJ) < 1e-9)
        #expect(abs(e[2 * (n - 1) + 1] - r.channels[1].energyJ) < 1e-9)
        // Power over each interval times its length gives back the energy.
        let p = try h5.readDoubles("/power_w"), ts = try h5.readDoubles("/time_s")
        let integral = (1..<n).reduce(0.0) { $0 + p[2 * $1] * (ts[$1] - ts[$1 - 1]) }
        #expect(abs(integral - r.channels[0].energyJ) < 1e-9)
        #expect(try h5.stringAttribute("/", "channels") == "cpu,ram")
        #expect(try h5.stringAttribute("/", "phase_names") == "[\"a\"]")
    }
}

@Suite struct EnergyCLITests {
    static func binary() throws -> URL { try CLIBinary.url() }

    @Test func passesTheChildsExitCodeThroughAndWritesItsFiles() throws {
        let t = try TempDir("cli")
        let p = Process()
        p.executableURL = try Self.binary()
        p.arguments = ["energy", "--output-dir", t.path, "--country", "ITA", "--interval", "0.1", "--", "sh", "-c", "exit 3"]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 3)
        #expect(text.contains("kg CO2eq"))
        for f in ["emissions.csv", "energy.json", "power.h5"] {
            #expect(FileManager.default.fileExists(atPath: t.url.appendingPathComponent(f).path), "\(f)")
        }
        let bad = Process()
        bad.executableURL = try Self.binary()
        bad.arguments = ["energy", "--pue", "0.5", "--", "true"]
        bad.standardError = Pipe()
        try bad.run()
        bad.waitUntilExit()
        #expect(bad.terminationStatus != 0)
    }
}
