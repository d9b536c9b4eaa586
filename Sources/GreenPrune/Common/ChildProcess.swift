import CKernels
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command as a child that dies with this process.
///
/// The child stays in this process's group (killing the group kills it) and, on Linux, gets
/// SIGKILL when this process dies, however it dies (the parent-death signal, which Foundation's
/// `Process` cannot set and which puts its children in groups of their own). So a sweep's steps,
/// and the command `greenprune energy` measures, never outlive the process that waits for them.
public enum ChildProcess {
    /// Where the child's standard streams go: `nil` keeps this process's own.
    public struct Streams {
        public var input: Int32?
        public var output: Int32?
        public var error: Int32?
        public init(input: Int32? = nil, output: Int32? = nil, error: Int32? = nil) {
            self.input = input
            self.output = output
            self.error = error
        }
    }

    /// Runs `argv` (argv[0] searched in PATH when it has no slash) to completion and returns its
    /// exit status, 128+N when it was killed by signal N.
    ///
    /// - Parameters:
    ///   - environment: the child's environment; nil passes this process's on.
    ///   - ignoringInterrupts: SIGINT and SIGTERM are ignored here while the child runs (the
    ///     child still gets them), so the caller survives a Ctrl-C to record what happened.
    /// The call blocks the calling thread until the child exits; the parent-death signal is tied
    /// to that thread, which is why the wait is not handed to another one.
    public static func run(_ argv: [String], environment: [String: String]? = nil, streams: Streams = Streams(),
                           ignoringInterrupts: Bool = false) throws -> Int32 {
        guard let name = argv.first else { throw InputError("command", "empty command line") }
        let path = try executablePath(name, environment: environment)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var cenv: [UnsafeMutablePointer<CChar>?]? = environment.map { env in
            env.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        }
        defer { for p in cenv ?? [] { free(p) } }

        var oldInt: sighandler_t?, oldTerm: sighandler_t?
        if ignoringInterrupts {
            oldInt = signal(SIGINT, SIG_IGN)
            oldTerm = signal(SIGTERM, SIG_IGN)
        }
        defer {
            if let oldInt { signal(SIGINT, oldInt) }
            if let oldTerm { signal(SIGTERM, oldTerm) }
        }
        var pid: pid_t = 0
        let rc: Int32 = cargs.withUnsafeMutableBufferPointer { args in
            if cenv != nil {
                return cenv!.withUnsafeMutableBufferPointer { env in
                    gp_spawn_bound(&pid, path, args.baseAddress, env.baseAddress, streams.input ?? -1,
                                   streams.output ?? -1, streams.error ?? -1, SIGKILL)
                }
            }
            return gp_spawn_bound(&pid, path, args.baseAddress, nil, streams.input ?? -1,
                                  streams.output ?? -1, streams.error ?? -1, SIGKILL)
        }
        guard rc == 0 else { throw InputError(name, "cannot run: \(String(cString: strerror(rc)))") }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 {
            guard errno == EINTR else { throw InputError(name, "waitpid failed: \(String(cString: strerror(errno)))") }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros: decode the status word by hand.
        let sig = st & 0x7f
        if sig == 0 { return (st >> 8) & 0xff }
        return 128 + sig
    }

    /// `name` itself when it holds a slash, else the first executable `PATH` entry of that name.
    static func executablePath(_ name: String, environment: [String: String]?) throws -> String {
        if name.contains("/") { return name }
        let path = (environment ?? ProcessInfo.processInfo.environment)["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue,
               FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        throw InputError(name, "cannot run: not found in PATH")
    }

    /// Whether a process with this id exists (one we may not signal counts).
    public static func isAlive(_ pid: pid_t) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
    }
}
