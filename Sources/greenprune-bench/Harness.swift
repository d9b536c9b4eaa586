import Foundation

/// The clocks, memory readings and round order every benchmark here shares.
enum Harness {
    /// Monotonic wall-clock seconds.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Process CPU seconds (user + system, all threads): a second clock that other processes
    /// on a busy machine do not advance.
    static func processCPUSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6
    }

    /// The "kB" fields of /proc/self/status (VmRSS, VmHWM, RssAnon, RssFile …) in bytes; empty
    /// where /proc is absent.
    static func procStatus() -> [String: Int] {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return [:] }
        var out: [String: Int] = [:]
        for line in s.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " || $0 == "\t" })
            if parts.count == 3, parts[2] == "kB", let v = Int(parts[1]) { out[String(parts[0])] = v * 1024 }
        }
        return out
    }

    /// Current resident set size in bytes.
    static func rss() -> Int { procStatus()["VmRSS"] ?? 0 }

    /// The median (the mean of the middle two for an even count; 0 when empty).
    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Interleaved rounds over `count` variants: round r runs them starting from variant r (mod
    /// count), so on a machine whose speed drifts each variant runs early and late alike; returns
    /// `results[r][i]`, variant i's measurement in round r.
    static func interleavedRounds<T>(_ rounds: Int, variants count: Int, _ measure: (_ variant: Int) throws -> T) rethrows -> [[T]] {
        var out: [[T]] = []
        for r in 0 ..< rounds {
            var round = [T?](repeating: nil, count: count)
            for step in 0 ..< count {
                let i = (step + r) % count
                round[i] = try measure(i)
            }
            out.append(round.map { $0! })
        }
        return out
    }
}
