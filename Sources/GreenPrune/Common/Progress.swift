import Foundation

/// A progress bar on stderr: `label [#####.....] 120/300 40% 12.3 docs/s ETA 0:15`.
///
/// Redraws at most every `minInterval` seconds; when stderr is not a terminal it prints a
/// plain line at most every 10 s instead, so logs stay readable. Results never go here.
public final class ProgressBar {
    public let label: String
    public let total: Int
    public let unit: String
    private var done = 0
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var drawnAt = -1
    private let isTTY = isatty(STDERR_FILENO) != 0
    private let minInterval: TimeInterval
    public var enabled: Bool
    /// Figures shown after the ETA (a training loss), set by the caller before `advance`.
    public var detail: String?

    public init(_ label: String, total: Int, unit: String = "it", enabled: Bool = true) {
        self.label = label
        self.total = max(total, 0)
        self.unit = unit
        self.enabled = enabled && !GreenPruneEnvironment.process.noProgress
        self.minInterval = isTTY ? 0.1 : 10
    }

    /// Advances by `n` units and redraws if enough time has passed.
    public func advance(_ n: Int = 1) {
        done += n
        let now = Date()
        if done >= total || now.timeIntervalSince(lastDraw) >= minInterval {
            lastDraw = now
            draw(now)
        }
    }

    /// Draws the final state and ends the line.
    public func finish() {
        guard enabled else { return }
        if drawnAt != done { draw(Date()) }
        if isTTY { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private func draw(_ now: Date) {
        guard enabled else { return }
        drawnAt = done
        let elapsed = max(now.timeIntervalSince(start), 1e-9)
        let rate = Double(done) / elapsed
        let frac = total > 0 ? min(Double(done) / Double(total), 1) : 0
        let width = 24
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "%@ [%@] %ld/%ld %3.0f%% %.1f %@/s ETA %@",
                          label, bar, done, total, frac * 100, rate, unit, ProgressBar.clock(eta)) + (detail.map { " " + $0 } ?? "")
        FileHandle.standardError.write(Data(((isTTY ? "\r\u{1B}[K" : "") + line + (isTTY ? "" : "\n")).utf8))
    }

    /// Formats seconds as `m:ss` or `h:mm:ss`.
    public static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60)
                         : String(format: "%ld:%02ld", s / 60, s % 60)
    }
}
