import Foundation

/// Reads the few procfs files the estimates need, under an injectable root (default `/proc`) so
/// tests can build fake trees.
public struct ProcFS: Sendable {
    public var root: String
    /// Clock ticks per second for `/proc/<pid>/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
    public var ticksPerSecond: Double

    public init(root: String = "/proc", ticksPerSecond: Double? = nil) {
        self.root = root
        self.ticksPerSecond = ticksPerSecond ?? Double(max(sysconf(Int32(_SC_CLK_TCK)), 1))
    }

    /// Machine-wide CPU time from the first (`cpu `) line of `/proc/stat`, in ticks:
    /// busy = user + nice + system + irq + softirq + steal, total = busy + idle + iowait
    /// (guest time is already inside user/nice and is not added twice).
    public func machineTicks() throws -> (busy: UInt64, total: UInt64) {
        let path = root + "/stat"
        let text = try SysfsFile.read(path)
        // The aggregate line comes first; do not split the whole file (it is long on big machines).
        let line = text.prefix(while: { $0 != "\n" })
        guard line.hasPrefix("cpu ") else { throw SysfsError.malformed(path, "first line is not the 'cpu ' line") }
        let f = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard f.count >= 4 else { throw SysfsError.malformed(path, "'cpu ' line has \(f.count) fields") }
        func at(_ i: Int) -> UInt64 { i < f.count ? f[i] : 0 }
        let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7)
        let idle = at(3) + at(4)
        return (busy, busy + idle)
    }

    /// Fields of `/proc/<pid>/stat` after the command name, so index 0 is field 3 (`state`).
    func statFields(_ pid: Int32) throws -> [Substring] {
        let path = "\(root)/\(pid)/stat"
        let text = try SysfsFile.read(path)
        // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
        guard let close = text.lastIndex(of: ")") else { throw SysfsError.malformed(path, "no ')' after the command name") }
        let f = text[text.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard f.count >= 22 else { throw SysfsError.malformed(path, "\(f.count + 2) fields, expected at least 24") }
        return f
    }

    /// CPU seconds of `pid`: utime + stime + cutime + cstime (fields 14–17), the last two being
    /// the time of children it has already waited for.
    public func processCPUSeconds(_ pid: Int32) throws -> Double {
        let f = try statFields(pid)
        let ticks = f[11...14].reduce(0.0) { $0 + Double(Int64($1) ?? 0) }
        return ticks / ticksPerSecond
    }

    /// Resident set size of `pid` in bytes (field 24, in pages).
    public func processRSSBytes(_ pid: Int32) throws -> Double {
        let f = try statFields(pid)
        return Double(Int64(f[21]) ?? 0) * Double(max(sysconf(Int32(_SC_PAGESIZE)), 1))
    }

    /// Live descendants of `pid` (children of every thread, recursively), from
    /// `/proc/<pid>/task/<tid>/children`. Missing files (an old kernel) give no children.
    public func descendants(of pid: Int32) -> [Int32] {
        var out: [Int32] = []
        var stack = [pid]
        while let p = stack.popLast(), out.count < 4096 {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/\(p)/task")) ?? []
            for t in tasks {
                guard let text = try? SysfsFile.read("\(root)/\(p)/task/\(t)/children") else { continue }
                for c in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
                    if let c = Int32(c), !out.contains(c) { out.append(c); stack.append(c) }
                }
            }
        }
        return out
    }

    /// CPU seconds of `pid` and its live descendants; each process counts its reaped children
    /// through cutime/cstime, so a child's time moves, not doubles, when it is waited for.
    public func treeCPUSeconds(_ pid: Int32) throws -> Double {
        var total = try processCPUSeconds(pid)
        for c in descendants(of: pid) {
            total += (try? processCPUSeconds(c)) ?? 0   // it may have exited since the listing
        }
        return total
    }

    /// RSS of `pid` and its live descendants, in bytes.
    public func treeRSSBytes(_ pid: Int32) throws -> Double {
        var total = try processRSSBytes(pid)
        for c in descendants(of: pid) { total += (try? processRSSBytes(c)) ?? 0 }
        return total
    }

    /// `MemTotal` and `MemAvailable` from `/proc/meminfo`, in bytes.
    public func memory() throws -> (total: Double, available: Double) {
        let path = root + "/meminfo"
        let text = try SysfsFile.read(path)
        var total: Double?, avail: Double?
        // MemTotal and MemAvailable are among the first lines: stop as soon as both are seen.
        for line in text.split(separator: "\n") {
            guard line.hasPrefix("MemTotal:") || line.hasPrefix("MemAvailable:") else { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let v = Double(parts[1]) else { continue }
            if parts[0] == "MemTotal:" { total = v * 1024 } else { avail = v * 1024 }
            if total != nil && avail != nil { break }
        }
        guard let t = total else { throw SysfsError.malformed(path, "no MemTotal line") }
        return (t, avail ?? t)
    }
}
