import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a small kernel file (sysfs, procfs) could not be read.
public enum SysfsError: Error, LocalizedError, Equatable {
    /// The file exists but this user may not read it (EACCES/EPERM), as RAPL's `energy_uj` is
    /// for non-root users since the fix for CVE-2020-8694.
    case permissionDenied(String)
    /// Missing, or any other failure (errno text in the message).
    case unreadable(String, String)
    /// The content is not what the kernel documents (e.g. not a number).
    case malformed(String, String)

    public var errorDescription: String? {
        switch self {
        case .permissionDenied(let p): return "\(p): permission denied"
        case .unreadable(let p, let why): return "\(p): cannot read (\(why))"
        case .malformed(let p, let why): return "\(p): \(why)"
        }
    }
}

/// Reads a whole small file as text; throws `SysfsError`. Injected into meters so tests can
/// simulate files that exist but are unreadable (tests run as root, where chmod 000 has no effect).
public typealias SysfsReader = (String) throws -> String

/// The real reader: `open`/`read`, at most 64 KiB (sysfs attributes are one page).
public enum SysfsFile {
    public static func read(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if e == EACCES || e == EPERM { throw SysfsError.permissionDenied(path) }
            throw SysfsError.unreadable(path, String(cString: strerror(e)))
        }
        defer { close(fd) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while out.count < 65536 {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EACCES || e == EPERM { throw SysfsError.permissionDenied(path) }
                throw SysfsError.unreadable(path, String(cString: strerror(e)))
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads a file holding one unsigned integer (`energy_uj`, `max_energy_range_uj`).
    public static func readUInt64(_ path: String, using reader: SysfsReader) throws -> UInt64 {
        let text = try reader(path).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let v = UInt64(text) else { throw SysfsError.malformed(path, "expected an unsigned integer, got '\(text.prefix(40))'") }
        return v
    }
}
