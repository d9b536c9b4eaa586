import Foundation

/// A private folder for the inputs of readers that take a file: one per process, emptied at exit
/// by the caller, each input written over the previous one of the same name.
final class FuzzScratch {
    let directory: URL

    init() throws {
        // tmpfs when there is one: the fuzzer writes one file per execution.
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
        directory = base.appendingPathComponent("greenprune-fuzz-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Writes `data` to `relative` inside the scratch folder and returns its URL.
    func write<D: DataProtocol>(_ data: D, as relative: String) throws -> URL {
        let url = directory.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(data).write(to: url)
        return url
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}
