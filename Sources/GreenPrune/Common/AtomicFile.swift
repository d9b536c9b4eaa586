import Foundation

/// Writes files so that a reader never sees a half-written one: data goes to a temporary
/// name in the same directory, then `rename(2)` moves it into place (atomic on POSIX).
public enum AtomicFile {
    /// Writes `data` to `url` via a temporary sibling and a rename.
    public static func write(_ data: Data, to url: URL) throws {
        let tmp = temporarySibling(of: url)
        do {
            try data.write(to: tmp)
            try commit(tmp, to: url)
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw InputError(url.path, "cannot write: \(FileErrors.problem(error))")
        }
    }

    /// Writes a UTF-8 string atomically.
    public static func write(_ text: String, to url: URL) throws {
        try write(Data(text.utf8), to: url)
    }

    /// A hidden temporary name beside `url` (same filesystem, so the rename is atomic).
    public static func temporarySibling(of url: URL) -> URL {
        let name = ".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        return url.deletingLastPathComponent().appendingPathComponent(name)
    }

    /// The name a `temporarySibling` name stands for (`.x.tmp-12-34` → `x`), else nil.
    public static func target(ofTemporary name: String) -> String? {
        guard name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards) else { return nil }
        let parts = name[r.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, Int32(parts[0]) != nil, UInt32(parts[1]) != nil else { return nil }
        let target = name[name.index(after: name.startIndex) ..< r.lowerBound]
        return target.isEmpty ? nil : String(target)
    }

    /// Moves a finished temporary file (or directory) into place, replacing what was there.
    public static func commit(_ tmp: URL, to url: URL) throws {
        if rename(tmp.path, url.path) != 0 {
            // rename(2) cannot replace a non-empty directory: move the old one aside first.
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
                let old = temporarySibling(of: url)
                guard rename(url.path, old.path) == 0, rename(tmp.path, url.path) == 0 else {
                    throw InputError(url.path, "cannot move \(tmp.lastPathComponent) into place: \(String(cString: strerror(errno)))")
                }
                try? FileManager.default.removeItem(at: old)
                return
            }
            throw InputError(url.path, "cannot move \(tmp.lastPathComponent) into place: \(String(cString: strerror(errno)))")
        }
    }
}
