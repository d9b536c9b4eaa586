import Foundation

/// The first processor's entry of /proc/cpuinfo, read independently of the kernels' own CPUID
/// checks, so tests can state which CPUs a "known fast" rule must name.
struct CPUInfo {
    let vendor: String
    let family: Int
    let flags: Set<String>

    /// Nil where /proc/cpuinfo cannot be read.
    static let first: CPUInfo? = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        let lines = text.components(separatedBy: "\n\n")[0].split(separator: "\n")
        func field(_ name: String) -> String {
            lines.first { $0.split(separator: ":")[0].trimmingCharacters(in: .whitespaces) == name }
                .map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? ""
        }
        return CPUInfo(vendor: field("vendor_id"), family: Int(field("cpu family")) ?? 0,
                       flags: Set(field("flags").split(separator: " ").map(String.init)))
    }()

    /// An AMD CPU of one of `families` (23: Zen 1/2, 25: Zen 3/4, 26: Zen 5).
    func isAMD(_ families: [Int]) -> Bool { vendor == "AuthenticAMD" && families.contains(family) }
}
