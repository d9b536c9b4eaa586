import Foundation

/// What the machine is, for the estimates and for the emissions file's descriptive columns.
public struct HostInfo: Codable, Sendable {
    /// `model name` from /proc/cpuinfo (nil when absent, e.g. some ARM kernels).
    public var cpuModel: String?
    /// Logical CPUs online (CodeCarbon's `cpu_count`).
    public var threads: Int
    /// Distinct `physical id`s (sockets), at least 1.
    public var sockets: Int
    /// Total RAM in GiB (CodeCarbon's `ram_total_size`, bytes / 1024³).
    public var ramTotalGB: Double
    /// Like Python's `platform.platform()`: `Linux-6.8.0-45-generic-x86_64-with-glibc2.39`.
    public var os: String
    /// `uname -m`.
    public var machine: String
    public var isArm: Bool { machine.hasPrefix("arm") || machine.hasPrefix("aarch") }

    enum CodingKeys: String, CodingKey {
        case cpuModel = "cpu_model", threads, sockets, ramTotalGB = "ram_total_gb", os, machine
    }

    public init(cpuModel: String?, threads: Int, sockets: Int, ramTotalGB: Double, os: String, machine: String) {
        self.cpuModel = cpuModel
        self.threads = threads
        self.sockets = sockets
        self.ramTotalGB = ramTotalGB
        self.os = os
        self.machine = machine
    }

    /// Reads this machine (procfs under `proc.root`).
    public static func detect(proc: ProcFS = ProcFS()) -> HostInfo {
        let info = (try? SysfsFile.read(proc.root + "/cpuinfo")) ?? ""
        var model: String?
        var physical = Set<String>()
        for line in info.split(separator: "\n") {
            let kv = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { continue }
            if model == nil, kv[0] == "model name" || kv[0] == "Model" { model = kv[1] }
            if kv[0] == "physical id" { physical.insert(kv[1]) }
        }
        let threads = max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
        let ram = ((try? proc.memory().total) ?? 0) / 1_073_741_824
        var u = utsname()
        uname(&u)
        func field<T>(_ v: T) -> String {
            withUnsafeBytes(of: v) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        }
        let sys = field(u.sysname), rel = field(u.release), mach = field(u.machine)
        var os = "\(sys)-\(rel)-\(mach)"
        if let v = gnuLibcVersion() { os += "-with-glibc\(v)" }
        return HostInfo(cpuModel: model?.isEmpty == false ? model : nil, threads: threads,
                        sockets: max(physical.count, 1), ramTotalGB: ram, os: os, machine: mach)
    }

    private static func gnuLibcVersion() -> String? {
        // confstr(_CS_GNU_LIBC_VERSION) gives "glibc 2.39".
        var buf = [CChar](repeating: 0, count: 64)
        guard confstr(Int32(_CS_GNU_LIBC_VERSION), &buf, buf.count) > 0 else { return nil }
        let s = String(cString: buf)
        return s.hasPrefix("glibc ") ? String(s.dropFirst(6)) : nil
    }
}
