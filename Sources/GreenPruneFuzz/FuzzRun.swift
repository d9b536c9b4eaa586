import Foundation
import GreenPrune

/// Running a target on one input, and replaying a corpus through it.
enum FuzzRun {
    enum Outcome { case value, error }

    /// `GREENPRUNE_FUZZ_VERBOSE=1` prints each rejection (to check that seeds get past the first check).
    static let verbose = ProcessInfo.processInfo.environment["GREENPRUNE_FUZZ_VERBOSE"] == "1"

    /// Runs `target` on `data`. A thrown error is an outcome like a value, but it must read as
    /// one line (the form every command prints); anything else is a finding and stops the process.
    @discardableResult
    static func one(_ target: FuzzTarget, _ data: Data, _ scratch: FuzzScratch) -> Outcome {
        do {
            try target.run(data, scratch)
            return .value
        } catch {
            let text = String(describing: error)
            if text.contains(where: \.isNewline) || text.isEmpty {
                FileHandle.standardError.write(Data("greenprune-fuzz: \(target.name): an error that is not one line: \(text.debugDescription)\n".utf8))
                abort()
            }
            if verbose { FileHandle.standardError.write(Data("rejected: \(text)\n".utf8)) }
            return .error
        }
    }

    /// The files of each path (a folder stands for its regular files, sorted by name).
    static func inputs(_ paths: [String]) throws -> [URL] {
        var out: [URL] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { throw InputError(p, "no such file or folder") }
            if isDir.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: p).sorted()
                out += names.map { URL(fileURLWithPath: p).appendingPathComponent($0) }
                    .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
            } else {
                out.append(URL(fileURLWithPath: p))
            }
        }
        return out
    }

    /// Replays every input; prints one summary line and returns the exit status (a crash never returns).
    static func replay(_ target: FuzzTarget, paths: [String], scratch: FuzzScratch) -> Int32 {
        let files: [URL]
        do { files = try inputs(paths) } catch {
            FileHandle.standardError.write(Data("greenprune-fuzz: \(error)\n".utf8))
            return 2
        }
        guard !files.isEmpty else {
            FileHandle.standardError.write(Data("greenprune-fuzz: \(target.name): no inputs given\n".utf8))
            return 2
        }
        var values = 0, errors = 0
        for f in files {
            guard let data = FileManager.default.contents(atPath: f.path) else {
                FileHandle.standardError.write(Data("greenprune-fuzz: \(f.path): cannot read\n".utf8))
                return 2
            }
            switch one(target, data, scratch) {
            case .value: values += 1
            case .error: errors += 1
            }
        }
        print("\(target.name): \(files.count) inputs replayed: \(values) read, \(errors) rejected with a one-line error, 0 crashes")
        return 0
    }
}
