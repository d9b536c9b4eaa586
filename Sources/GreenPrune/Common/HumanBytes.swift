import Foundation

/// Bytes in decimal units: "538.1 MB" (what `inspect` and the benchmarks print).
public func humanBytes(_ n: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var v = Double(n), u = 0
    while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}
