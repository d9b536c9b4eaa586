import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The rule for where a command may write a model directory (or file) that replaces whatever
/// is at its path when renamed into place (`AtomicFile.commit`).
///
/// - An output that exists and is not empty is refused unless `force`: replacing it deletes
///   what was there.
/// - Never, even with `force`, an output that is one of the inputs, holds one of them (the
///   input file's directory or any folder above an input), or holds the current directory:
///   the rename would delete the data the command reads, or the user's working folder.
///
/// Paths are compared after resolving symbolic links and `..` (of the part that exists), so a
/// link or a roundabout spelling of the input is recognised. Every command that writes a model
/// directory checks its `--out` with `check` before it does any work.
public enum OutputTarget {
    /// Throws a one-line `InputError` naming `output` when it may not be written.
    ///
    /// - Parameters:
    ///   - inputs: the files and directories the command reads (the model, calibration text…).
    ///   - force: replace an existing non-empty output (`--force`).
    public static func check(_ output: URL, inputs: [URL], force: Bool) throws {
        let out = resolved(output)
        guard out != "/" else { throw InputError(output.path, "is the root directory; name a new folder for the output") }
        let home = resolved(FileManager.default.homeDirectoryForCurrentUser)
        if out == home { throw InputError(output.path, "is your home directory; name a new folder for the output") }
        for input in inputs {
            let inp = resolved(input)
            if inp == out {
                throw InputError(output.path, "is the input \(input.path); the output must go elsewhere (even with --force)")
            }
            if isInside(inp, out) {
                throw InputError(output.path, "holds the input \(input.path); replacing it would delete the input (refused even with --force)")
            }
        }
        let cwd = resolved(URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        if cwd == out || isInside(cwd, out) {
            throw InputError(output.path, "holds the current directory; name a new folder for the output (refused even with --force)")
        }
        if !force, let what = existingContent(out) {
            throw InputError(output.path, "\(what); use --force to replace it")
        }
    }

    /// Whether `path` lies strictly below `folder` (both resolved).
    static func isInside(_ path: String, _ folder: String) -> Bool {
        path.hasPrefix(folder == "/" ? "/" : folder + "/") && path != folder
    }

    /// A phrase for what is at `path` when replacing it would lose data: a directory that is not
    /// empty, a non-empty file, anything else that exists. nil when nothing (or an empty
    /// directory or file) is there.
    static func existingContent(_ path: String) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? ["?"]
            return entries.isEmpty ? nil : "exists and is not empty (\(entries.count) entr\(entries.count == 1 ? "y" : "ies"))"
        case S_IFREG:
            return st.st_size == 0 ? nil : "exists (a file of \(st.st_size) bytes)"
        default:
            return "exists"
        }
    }

    /// The absolute path of `url` with links and `..` resolved: realpath(3) of the longest part
    /// that exists, the rest appended (lexically, as it will be created).
    public static func resolved(_ url: URL) -> String {
        var path = url.path
        if !path.hasPrefix("/") { path = FileManager.default.currentDirectoryPath + "/" + path }
        var tail: [String] = []
        var head = path
        while true {
            if let r = realpath(head, nil) {
                defer { free(r) }
                var result = String(cString: r)
                for c in tail.reversed() {
                    switch c {
                    case "", ".": continue
                    case "..": result = (result as NSString).deletingLastPathComponent
                    default: result = result == "/" ? "/" + c : result + "/" + c
                    }
                }
                return result.isEmpty ? "/" : result
            }
            guard head != "/", !head.isEmpty else { return URL(fileURLWithPath: path).standardizedFileURL.path }
            let ns = head as NSString
            tail.append(ns.lastPathComponent)
            head = ns.deletingLastPathComponent
            if head.isEmpty { head = "/" }
        }
    }
}
