import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A lock on a sweep folder, so two sweeps never work in it at once (each would delete the
/// other's attempt folders).
///
/// flock(2) on `OUT/.sweep.lock`: the kernel drops it when its holder dies, however it dies, so
/// a lock left by a killed sweep is simply taken over. A whole sweep holds it exclusively; the
/// `--only` runs of a Slurm job array, which share the folder by design, hold it shared, so they
/// run side by side but never beside a whole sweep. The exclusive holder writes its pid into the
/// file for the message the next sweep prints.
public final class SweepLock {
    public enum Mode { case exclusive, shared }

    /// The lock file's name in the sweep folder.
    public static let fileName = ".sweep.lock"

    private let fd: Int32
    public let url: URL

    /// Takes the lock on `folder` (created if needed). Throws a one-line error naming the
    /// holder's pid when it is held and `wait` is false; with `wait`, blocks until it is free.
    public init(folder: URL, mode: Mode, wait: Bool = false) throws {
        url = folder.appendingPathComponent(Self.fileName)
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw InputError(folder.path, "cannot create the sweep folder: \(FileErrors.problem(error))")
        }
        // CLOEXEC: a step must not inherit (and so keep holding) the sweep's lock.
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw InputError(url.path, "cannot open the lock file: \(String(cString: strerror(errno)))") }
        let op = mode == .exclusive ? LOCK_EX : LOCK_SH
        // A lock that was just released can still be held for a moment by a child forked (by
        // another thread of this process) before its exec closed the inherited descriptor, so a
        // busy lock is retried for a short grace period before it counts as another sweep's.
        let graceEnd = DispatchTime.now().uptimeNanoseconds + 2_000_000_000
        while flock(fd, op | (wait ? 0 : LOCK_NB)) != 0 {
            let e = errno
            if e == EINTR { continue }
            if e == EWOULDBLOCK, DispatchTime.now().uptimeNanoseconds < graceEnd {
                usleep(20_000)
                continue
            }
            close(fd)
            if e == EWOULDBLOCK {
                let who = Self.holder(of: url).map { "another sweep (pid \($0))" } ?? "another sweep"
                throw InputError(folder.path, "\(who) is running in this folder; wait for it to finish (or pass --wait), or stop it")
            }
            throw InputError(url.path, "cannot lock: \(String(cString: strerror(e)))")
        }
        self.fd = fd
        if mode == .exclusive {
            let text = "\(getpid())\n"
            _ = ftruncate(fd, 0)
            _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        }
    }

    deinit { close(fd) }

    /// The pid holding a lock on `url`: from /proc/locks (Linux; exact), else the pid the last
    /// exclusive holder wrote, if that process is alive.
    public static func holder(of url: URL) -> pid_t? {
        var st = stat()
        if stat(url.path, &st) == 0, let text = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) {
            // "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF": pid, then major:minor:inode.
            // The kernel prints the device as %02x:%02x of its major and minor numbers.
            let dev = UInt64(st.st_dev)
            let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff), minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
            let id = String(format: "%02x:%02x:%llu", major, minor, UInt64(st.st_ino))
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                guard f.count >= 6, f[1] == "FLOCK", f[5] == id, let pid = pid_t(f[4]), pid != getpid() else { continue }
                return pid
            }
        }
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        if let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), ChildProcess.isAlive(pid) { return pid }
        return nil
    }
}
