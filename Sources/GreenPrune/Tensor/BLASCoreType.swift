import COpenBLAS
import Foundation

/// OpenBLAS picks its kernels when the library loads, from the CPU it recognises. The OpenBLAS
/// 0.3.21 that Debian ships does not recognise newer Xeons (a virtual "Intel Xeon Processor"
/// with AVX-512) and falls back to its SSE3 "Prescott" kernels, five times slower here. The
/// only fix is `OPENBLAS_CORETYPE` in the environment *before* the library loads, so the CLI
/// re-executes itself once with it set. A value already in the environment is never changed.
public enum BLASCoreType {
    /// The kernel family OpenBLAS runs with in this process.
    public static var current: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// The kernel family this CPU can run, from /proc/cpuinfo's flags (nil: keep OpenBLAS's choice).
    public static func suited(cpuFlags: Set<String>) -> String? {
        if cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return "SkylakeX" }
        if cpuFlags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    /// Flags of the first CPU in /proc/cpuinfo (empty where it cannot be read).
    public static func cpuFlags(cpuinfo: String = "/proc/cpuinfo") -> Set<String> {
        guard let text = try? String(contentsOfFile: cpuinfo, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// Re-executes the running binary with `OPENBLAS_CORETYPE` set when OpenBLAS fell back to
    /// its generic kernels on a CPU that can run better ones. Returns (does nothing) when the
    /// variable is already set, when `GREENPRUNE_NO_REEXEC` is set, or when exec fails.
    public static func reexecIfGeneric() {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, !GreenPruneEnvironment.process.noReexec else { return }
        let generic: Set<String> = ["Prescott", "Core2", "Katmai", "Northwood", "Penryn", "Nehalem", "Dunnington"]
        guard generic.contains(current), let better = suited(cpuFlags: cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        let args = CommandLine.arguments
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cargs.append(nil)
        execv("/proc/self/exe", cargs)
        // exec failed: carry on with the generic kernels.
        unsetenv("OPENBLAS_CORETYPE")
        for p in cargs { free(p) }
    }
}
