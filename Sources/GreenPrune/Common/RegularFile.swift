import Foundation

/// Refuses paths that are not regular files before anything opens them.
///
/// `open(2)` on a FIFO blocks until a writer appears and a character device may never end, so
/// every model or data file is checked with `stat(2)` (symlinks followed) first: a hostile or
/// mistaken path fails with one line instead of hanging the command.
public enum RegularFile {
    /// Throws `InputError(path, …)` unless `url` names an existing regular file.
    public static func check(_ url: URL) throws {
        var st = stat()
        guard stat(url.path, &st) == 0 else {
            throw InputError(url.path, "cannot open: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw InputError(url.path, "not a regular file (\(kind(st.st_mode)))")
        }
    }

    /// The contents of `url` after `check`: errors name the file.
    public static func contents(_ url: URL) throws -> Data {
        try check(url)
        do { return try Data(contentsOf: url) } catch {
            throw InputError(url.path, "cannot read: \(error.localizedDescription)")
        }
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "mode \(String(mode & S_IFMT, radix: 8))"
        }
    }
}
