import Foundation
import Testing
import GreenPrune

/// Issue 22, "Lost data": the built CLI used carelessly or against itself. Each case asserts the
/// exit status, a one-line `Error: FILE: problem` on stderr, that nothing of the user's was
/// deleted or changed, and that nothing complete-looking was written.
enum LostData {
    /// The single non-empty line of `stderr`, nil when there are more (or none).
    static func oneLine(_ stderr: String) -> String? {
        let lines = stderr.split(whereSeparator: \.isNewline).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        return lines.count == 1 ? String(lines[0]) : nil
    }

    /// Every file under `dir` (relative path → bytes; links as "-> target"), hidden ones included.
    static func snapshot(_ dir: URL) -> [String: Data] {
        let fm = FileManager.default
        var out: [String: Data] = [:]
        func walk(_ d: URL, _ prefix: String) {
            for name in (try? fm.contentsOfDirectory(atPath: d.path)) ?? [] {
                let u = d.appendingPathComponent(name), rel = prefix + name
                if let dest = try? fm.destinationOfSymbolicLink(atPath: u.path) {
                    out[rel] = Data(("-> " + dest).utf8)
                    continue
                }
                var isDir: ObjCBool = false
                _ = fm.fileExists(atPath: u.path, isDirectory: &isDir)
                if isDir.boolValue { out[rel + "/"] = Data(); walk(u, rel + "/") } else { out[rel] = fm.contents(atPath: u.path) ?? Data() }
            }
        }
        walk(dir, "")
        return out
    }

    static func hidden(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasPrefix(".") }.sorted()
    }

    /// A tiny Llama directory (3 layers) with one float checkpoint.
    static func model(in root: URL) throws -> URL {
        let m = root.appendingPathComponent("model")
        try writeTinyLlama(m, layerDims: [(4, 96), (4, 96), (4, 96)])
        return m
    }

    /// The argument lists that write a model directory from `model` (or `gguf`) to `out`.
    static func writer(_ command: String, model: URL, gguf: URL, out: String) -> [String] {
        switch command {
        case "quantize": return ["quantize", model.path, "--out", out, "--bits", "8", "--quiet"]
        case "prune":
            return ["prune", model.path, "--out", out, "--ratio", "0.25", "--importance", "l2", "--skip-first", "0",
                    "--skip-last", "0", "--no-energy", "--quiet"]
        default: return ["convert", gguf.path, "--out", out, "--quiet"]
        }
    }

    /// Processes whose command line mentions `path` (steps of a sweep working under it).
    static func processes(mentioning path: String) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name -> pid_t? in
            guard let pid = pid_t(name), pid != getpid(),
                  let raw = FileManager.default.contents(atPath: "/proc/\(name)/cmdline"), !raw.isEmpty else { return nil }
            return String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(path) ? pid : nil
        }
    }

    /// The children of `pid` (from /proc/*/stat).
    static func children(of pid: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name -> pid_t? in
            guard let p = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // "pid (comm) state ppid ...": the comm may hold spaces, so split after its ')'.
            let f = stat[stat.index(after: close)...].split(separator: " ")
            return f.count > 1 && pid_t(f[1]) == pid ? p : nil
        }
    }

    /// Whether `pid` is a live process (not gone, not a zombie waiting to be reaped).
    static func running(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first ?? ""
        return state != "Z" && state != "X"
    }

    /// Names and sizes of everything under `dir` (what a process still writing there changes).
    static func listing(_ dir: URL) -> [String: Int] {
        var out: [String: Int] = [:]
        guard let e = FileManager.default.enumerator(atPath: dir.path) else { return out }
        while let rel = e.nextObject() as? String {
            out[rel] = (try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent(rel).path)[.size] as? Int) ?? -1
        }
        return out
    }

    /// Waits up to `seconds` for `condition`; returns whether it came true.
    static func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// A pid that no process has (a finished child's).
    static func deadPid() throws -> pid_t {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        return p.processIdentifier
    }

    static func start(_ argv: [String], cwd: URL, env: [String: String], stdout: URL? = nil, stderr: URL? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.currentDirectoryURL = cwd
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        for (url, set) in [(stdout, { (h: FileHandle) in p.standardOutput = h }), (stderr, { (h: FileHandle) in p.standardError = h })] {
            if let url {
                _ = FileManager.default.createFile(atPath: url.path, contents: nil)
                set(try FileHandle(forWritingTo: url))
            } else {
                set(FileHandle.nullDevice)
            }
        }
        try p.run()
        return p
    }
}

@Suite struct HostileOutputTests {
    /// An existing non-empty --out is refused by every command that writes a model directory,
    /// before any work, and keeps its files.
    @Test(arguments: ["quantize", "prune", "convert"])
    func existingNonEmptyOutputIsRefused(_ command: String) throws {
        let bin = try SweepFixtures.cli()
        let root = try SweepFixtures.tempDir("hostile-out-\(command)")
        defer { try? FileManager.default.removeItem(at: root) }
        let model = try LostData.model(in: root)
        let gguf = root.appendingPathComponent("x.gguf")
        try Data("GGUF not really".utf8).write(to: gguf)
        let out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: out.appendingPathComponent("notes.txt"))
        let before = LostData.snapshot(root)

        let (rc, _, err) = try SweepFixtures.run([bin] + LostData.writer(command, model: model, gguf: gguf, out: out.path), cwd: root)
        #expect(rc != 0)
        let line = try #require(LostData.oneLine(err), "\(err)")
        #expect(line == "Error: \(out.path): exists and is not empty (1 entry); use --force to replace it")
        #expect(LostData.snapshot(root) == before)
    }

    /// With --force an ordinary output is replaced by a complete directory; the input stays.
    @Test(arguments: ["quantize", "prune"])
    func forceReplacesAnOrdinaryOutput(_ command: String) throws {
        let bin = try SweepFixtures.cli()
        let root = try SweepFixtures.tempDir("hostile-force-\(command)")
        defer { try? FileManager.default.removeItem(at: root) }
        let model = try LostData.model(in: root)
        let out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: out.appendingPathComponent("notes.txt"))
        let input = LostData.snapshot(model)

        let (rc, _, err) = try SweepFixtures.run([bin] + LostData.writer(command, model: model, gguf: model, out: out.path) + ["--force"], cwd: root)
        #expect(rc == 0, "\(err)")
        let files = Set((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? [])
        #expect(!files.contains("notes.txt"))
        #expect(files.isSuperset(of: ["config.json", "model.safetensors", command == "prune" ? "pruning.json" : "quantization.json"]))
        #expect(LostData.snapshot(model) == input)
        #expect(LostData.hidden(root).isEmpty)
    }

    /// The input, the input file's directory, a folder above either, and the current directory
    /// are never replaced, however they are spelled (a link, `..`, `.`), even with --force.
    @Test func inputsAndTheirParentsAreNeverReplaced() throws {
        let bin = try SweepFixtures.cli()
        let root = try SweepFixtures.tempDir("hostile-input")
        defer { try? FileManager.default.removeItem(at: root) }
        let model = try LostData.model(in: root)
        let gguf = root.appendingPathComponent("ggufs/x.gguf")
        try FileManager.default.createDirectory(at: gguf.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("GGUF not really".utf8).write(to: gguf)
        let link = root.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: model)
        let work = root.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: work.appendingPathComponent("sub/notes.txt"))
        let before = LostData.snapshot(root)

        // (command, --out, the working directory, a phrase of the refusal)
        let cases: [(String, String, URL, String)] = [
            ("prune", model.path, root, "is the input"),                       // prune M --out M
            ("prune", link.path, root, "is the input"),                        // through a link
            ("quantize", root.path, root, "holds the input"),                  // quantize P/model --out P
            ("quantize", model.path + "/sub/../..", root, "holds the input"),  // P spelled with ..
            ("quantize", ".", model, "is the input"),                          // run inside the model
            ("quantize", work.path, work.appendingPathComponent("sub"), "holds the current directory"),
            ("convert", gguf.deletingLastPathComponent().path, root, "holds the input"),  // the file's folder
            ("convert", gguf.path, root, "is the input"),
        ]
        for (command, out, cwd, phrase) in cases {
            let argv = [bin] + LostData.writer(command, model: model, gguf: gguf, out: out) + ["--force"]
            let (rc, _, err) = try SweepFixtures.run(argv, cwd: cwd)
            #expect(rc != 0, "\(command) --out \(out)")
            let line = try #require(LostData.oneLine(err), "\(command) --out \(out): \(err)")
            #expect(line.contains(phrase) && line.contains("--force"), "\(command) --out \(out): \(line)")
            // It names the output (as an absolute path).
            let named = line.dropFirst("Error: ".count).components(separatedBy: ": ").first ?? ""
            let given = out.hasPrefix("/") ? out : cwd.path + "/" + out
            #expect(OutputTarget.resolved(URL(fileURLWithPath: named)) == OutputTarget.resolved(URL(fileURLWithPath: given)), "\(line)")
            #expect(LostData.snapshot(root) == before, "\(command) --out \(out) changed files")
        }
    }

    /// A file that cannot be written is reported as `Error: FILE: problem` (the output's own
    /// name, not a temporary's), not as Foundation's `NSCocoaErrorDomain Code=513` text.
    @Test(arguments: ["quantize", "prune"])
    func permissionErrorIsOneLineNamingTheOutput(_ command: String) throws {
        let bin = try SweepFixtures.cli()
        let root = try SweepFixtures.tempDir("hostile-perm-\(command)")
        defer {
            chmod(root.appendingPathComponent("ro").path, 0o755)
            try? FileManager.default.removeItem(at: root)
        }
        let model = try LostData.model(in: root)
        // A folder nobody may create entries in: a read-only one, or for root (who may write
        // anywhere on disk) sysfs, where the kernel refuses mkdir to everyone.
        let parent: URL
        if geteuid() == 0 {
            parent = URL(fileURLWithPath: "/sys")
            try #require(FileManager.default.fileExists(atPath: "/sys/kernel"), "needs sysfs when run as root")
        } else {
            parent = root.appendingPathComponent("ro")
            try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
            chmod(parent.path, 0o555)
        }
        let out = parent.appendingPathComponent("gp-hostile-\(getpid())-\(command)")
        let (rc, _, err) = try SweepFixtures.run([bin] + LostData.writer(command, model: model, gguf: model, out: out.path), cwd: root)
        #expect(rc != 0)
        let line = try #require(LostData.oneLine(err), "\(err)")
        #expect(line.hasPrefix("Error: \(out.path):"), "\(line)")
        #expect(line.hasSuffix("permission denied") || line.hasSuffix("operation not permitted"), "\(line)")
        #expect(!line.contains("NSCocoaErrorDomain") && !line.contains("Code="))
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }
}

@Suite struct HostileFlagTests {
    /// A negative value reaches the command's range check instead of reading as a flag.
    @Test func negativeNumbersAreValuesNotFlags() throws {
        let bin = try SweepFixtures.cli()
        let root = try SweepFixtures.tempDir("hostile-neg")
        defer { try? FileManager.default.removeItem(at: root) }
        let model = try LostData.model(in: root)
        let out = root.appendingPathComponent("out").path
        for (args, message) in [
            (["prune", model.path, "--out", out, "--ratio", "-1"], "Error: --ratio must be in [0, 1), got -1"),
            (["prune", model.path, "--out", out, "--ratio=-1"], "Error: --ratio must be in [0, 1), got -1"),
            (["prune", model.path, "--out", out, "--target-params", "-0.5"], "Error: --target-params (the fraction of all parameters to remove) must be in [0, 1), got -0.5"),
            (["quantize", model.path, "--out", out, "--bits", "8", "--skip-first", "-2"], "Error: --skip-first must be ≥ 0, got -2"),
        ] {
            let (rc, _, err) = try SweepFixtures.run([bin] + args, cwd: root)
            #expect(rc != 0, "\(args)")
            // The parser's usage lines follow a flag error; the first line is the message.
            #expect(err.split(separator: "\n").first.map(String.init) == message, "\(args): \(err)")
            #expect(!err.contains("Missing value"))
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// A task given twice is refused before the model is read, and no output folder appears.
    @Test func duplicateTaskIsRefusedBeforeAnyWork() throws {
        let bin = try SweepFixtures.cli()
        let root = try SweepFixtures.tempDir("hostile-tasks")
        defer { try? FileManager.default.removeItem(at: root) }
        let model = try LostData.model(in: root)
        let out = root.appendingPathComponent("eval")
        let t0 = Date()
        let (rc, _, err) = try SweepFixtures.run([bin, "evaluate", model.path, "--tasks", "piqa,piqa", "--output", out.path, "--quiet"], cwd: root)
        #expect(rc != 0)
        #expect(LostData.oneLine(err) == "Error: --tasks: piqa is listed twice", "\(err)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(Date().timeIntervalSince(t0) < 20)
    }
}

/// Sweeps killed, run twice at once, or with failures, through the built CLI and the fake step
/// binary (Fixtures/fake-greenprune.sh: deterministic, model-free steps).
@Suite(.serialized) struct HostileSweepTests {
    static let env = ["GREENPRUNE_SWEEP_BINARY": SweepFixtures.fakeBinary, "GREENPRUNE_NO_PROGRESS": "1"]

    static func config(model: URL, broken: Bool = false) -> String {
        """
        output: out
        energy: {country: FRA}
        tasks: [{name: piqa, limit: 10}, {name: wikitext2_chunked, limit: 5}]
        models:
          - name: tiny
            path: \(model.path)
            variants:
              - {name: baseline}
              - {name: l2-20, prune: {ratio: 0.2, importance: l2}}
              - {name: int8, quantize: {bits: 8}}
              - {name: l2-30-int4, prune: {ratio: 0.3, importance: l2}, quantize: {bits: 4}}
        \(broken ? "      - {name: broken, quantize: {bits: 8, skip: [--fail]}}" : "")
        """
    }

    /// Hidden entries a finished sweep folder may hold: its own lock files.
    static let locks: Set<String> = [SweepLock.fileName, ".results.lock"]

    static func stale(_ out: URL) -> [String] {
        LostData.hidden(out).filter { !locks.contains($0) } + LostData.hidden(out.appendingPathComponent("runs")).map { "runs/" + $0 }
    }

    /// Killed by process group at random moments, then rerun: the uninterrupted sweep's rows, no
    /// step left running after a kill, and no stale hidden folder at the end.
    @Test func killedByProcessGroupThenRerunGivesTheUninterruptedRows() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("hostile-kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try SweepFixtures.fakeModel(in: dir)
        try Data(Self.config(model: model).utf8).write(to: dir.appendingPathComponent("c.yaml"))
        // Steps long enough that one outliving its sweep would still be running when looked for.
        var env = Self.env
        env["FAKE_SLEEP"] = "0.25"

        let t0 = Date()
        let (rc, _, err) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--output", "ref", "--no-report"], cwd: dir, env: env)
        let length = Date().timeIntervalSince(t0)
        #expect(rc == 0, "\(err)")
        let reference = try SweepResumeTests.rowsWithoutTimes(dir.appendingPathComponent("ref/results.csv"))
        #expect(reference.count == 1 + 4 * 4)  // header, 4 runs × (piqa acc, acc_norm + wikitext 2 perplexities)

        let out = dir.appendingPathComponent("out")
        var killed = 0, moments: [Double] = []
        for _ in 0 ..< 6 where killed < 4 {
            // A moment within the work left (each rerun skips the runs already finished).
            let left = Double(4 - SweepResumeTests.finished(out)) / 4
            guard left > 0 else { break }
            let at = Double.random(in: 0.02 ... max(0.05, 0.9 * length * left))
            moments.append(at)
            let p = try LostData.start([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
            usleep(useconds_t(at * 1e6))
            // Foundation starts the sweep as the leader of a process group of its own.
            if p.isRunning { kill(-p.processIdentifier, SIGKILL); killed += 1 }
            // Looked at before reaping the sweep: a step that outlived it would still be running
            // (steps take 0.25 s and more) and go on writing into the folder.
            #expect(LostData.eventually(0.2) { LostData.processes(mentioning: out.path).isEmpty },
                    "steps outlived their sweep (killed at \(at) s): \(LostData.processes(mentioning: out.path))")
            let after = LostData.listing(out)
            usleep(600_000)
            #expect(LostData.listing(out) == after, "the folder changed after the sweep was killed at \(at) s")
            p.waitUntilExit()
            if FileManager.default.fileExists(atPath: out.appendingPathComponent("results.csv").path) {
                let rows = try SweepResumeTests.rowsWithoutTimes(out.appendingPathComponent("results.csv"))
                #expect(Set(rows.dropFirst()).isSubset(of: Set(reference.dropFirst())), "killed at \(at) s")
            }
        }
        #expect(killed >= 3, "the sweep finished before most kill moments \(moments); the kills tested nothing")
        let (rc2, _, err2) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
        #expect(rc2 == 0, "\(err2)")
        #expect(try SweepResumeTests.rowsWithoutTimes(out.appendingPathComponent("results.csv")) == reference, "kill moments \(moments)")
        #expect(Self.stale(out).isEmpty, "\(Self.stale(out))")
    }

    /// SIGKILL to the sweep alone (not its group): its steps get the parent-death signal.
    @Test func stepsDieWhenOnlyTheSweepIsKilled() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("hostile-pdeath")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try SweepFixtures.fakeModel(in: dir)
        try Data(Self.config(model: model).utf8).write(to: dir.appendingPathComponent("c.yaml"))
        var env = Self.env
        env["FAKE_SLEEP"] = "5"
        let p = try LostData.start([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
        defer { kill(-p.processIdentifier, SIGKILL); p.waitUntilExit() }
        #expect(LostData.eventually(10) { !LostData.children(of: p.processIdentifier).isEmpty })
        let steps = LostData.children(of: p.processIdentifier)
        kill(p.processIdentifier, SIGKILL)
        #expect(LostData.eventually(2) { !steps.contains(where: LostData.running) }, "steps \(steps) outlived the sweep")
        for s in steps where LostData.running(s) { kill(s, SIGKILL) }
        p.waitUntilExit()
    }

    /// `greenprune energy` takes the command it measures along when it is killed.
    @Test func energyTakesItsCommandAlong() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("hostile-energy")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = try LostData.start([bin, "energy", "--output-dir", dir.path, "--energy-meter", "estimate", "--", "sleep", "60"],
                                  cwd: dir, env: [:])
        defer { kill(-p.processIdentifier, SIGKILL); p.waitUntilExit() }
        #expect(LostData.eventually(10) { !LostData.children(of: p.processIdentifier).isEmpty })
        let children = LostData.children(of: p.processIdentifier)
        kill(p.processIdentifier, SIGKILL)
        #expect(LostData.eventually(2) { !children.contains(where: LostData.running) }, "\(children) outlived energy")
        for c in children where LostData.running(c) { kill(c, SIGKILL) }
        p.waitUntilExit()
    }

    /// A second sweep on the same folder is refused with the first's pid, or waits with --wait;
    /// the first finishes with every row.
    @Test func secondSweepOnTheSameFolderIsRefusedOrWaits() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("hostile-two")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try SweepFixtures.fakeModel(in: dir)
        try Data(Self.config(model: model).utf8).write(to: dir.appendingPathComponent("c.yaml"))
        var env = Self.env
        env["FAKE_SLEEP"] = "0.1"
        let out = dir.appendingPathComponent("out")
        let first = try LostData.start([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
        defer { kill(-first.processIdentifier, SIGKILL) }
        // Running once a step has started (the lock is taken before any step).
        #expect(LostData.eventually(10) { !LostData.children(of: first.processIdentifier).isEmpty })

        let (rc, _, err) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: env)
        #expect(rc != 0)
        #expect(LostData.oneLine(err) == "Error: \(out.path): another sweep (pid \(first.processIdentifier)) is running in this folder; wait for it to finish (or pass --wait), or stop it",
                "\(err)")
        let (rcWait, stdout, errWait) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--no-report", "--wait"], cwd: dir, env: env)
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
        #expect(rcWait == 0, "\(errWait)")
        #expect(stdout.contains("0 done, 0 failed, 4 already finished"), "\(stdout)")
        let rows = try SweepResumeTests.rowsWithoutTimes(out.appendingPathComponent("results.csv"))
        #expect(rows.count == 1 + 4 * 4 && rows.dropFirst().allSatisfy { $0[9] == "done" })
        #expect(Self.stale(out).isEmpty)
    }

    /// A lock, attempt folders and temporary files left by a dead sweep are taken over and
    /// removed; those of a live process are left alone.
    @Test func leftoversOfADeadSweepAreTakenOver() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("hostile-stale")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try SweepFixtures.fakeModel(in: dir)
        try Data(Self.config(model: model).utf8).write(to: dir.appendingPathComponent("c.yaml"))
        let out = dir.appendingPathComponent("out"), runs = out.appendingPathComponent("runs")
        let dead = try LostData.deadPid()
        try FileManager.default.createDirectory(at: runs, withIntermediateDirectories: true)
        try Data("\(dead)\n".utf8).write(to: out.appendingPathComponent(SweepLock.fileName))
        let leftovers = [runs.appendingPathComponent(".tiny__int8.attempt-\(dead)-12"),
                         runs.appendingPathComponent(".tiny__gone.attempt-\(dead)-34"),
                         out.appendingPathComponent(".results.csv.tmp-\(dead)-56")]
        for l in leftovers.prefix(2) { try FileManager.default.createDirectory(at: l.appendingPathComponent("logs"), withIntermediateDirectories: true) }
        try Data("x".utf8).write(to: leftovers[2])
        let live = runs.appendingPathComponent(".tiny__other.attempt-\(getpid())-78")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: true)

        let (rc, _, err) = try SweepFixtures.run([bin, "sweep", "c.yaml", "--no-report"], cwd: dir, env: Self.env)
        #expect(rc == 0, "\(err)")
        for l in leftovers { #expect(!FileManager.default.fileExists(atPath: l.path), "\(l.lastPathComponent) is still there") }
        #expect(FileManager.default.fileExists(atPath: live.path))
        #expect(Self.stale(out) == ["runs/" + live.lastPathComponent])
    }

    /// A sweep in which a run failed finishes the others, writes results.csv, and exits 1 with
    /// one line naming the failed run; so does a rerun that leaves it failed.
    @Test func failedRunMakesTheSweepExitNonZero() throws {
        let bin = try SweepFixtures.cli()
        let dir = try SweepFixtures.tempDir("hostile-failed")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try SweepFixtures.fakeModel(in: dir)
        try Data(Self.config(model: model, broken: true).utf8).write(to: dir.appendingPathComponent("c.yaml"))
        let out = dir.appendingPathComponent("out")
        for attempt in 0 ..< 2 {
            let (rc, stdout, err) = try SweepFixtures.run([bin, "sweep", "c.yaml"], cwd: dir, env: Self.env)
            #expect(rc == 1, "\(err)")
            let last = err.split(separator: "\n").last.map(String.init) ?? ""
            #expect(last.hasPrefix("Error: \(out.path): 1 of 5 runs failed (tiny__broken)"), "\(err)")
            #expect(stdout.contains(attempt == 0 ? "4 done, 1 failed, 0 already finished" : "0 done, 0 failed, 5 already finished"))
            #expect(stdout.contains("report: "))
            let rows = try SweepResumeTests.rowsWithoutTimes(out.appendingPathComponent("results.csv"))
            #expect(rows.count == 1 + 4 * 4 + 1 && rows.filter { $0[9] == "failed" }.map { $0[3] } == ["broken"])
        }
    }
}

@Suite struct OutputTargetTests {
    /// `..` after a link climbs from the link's target, as the kernel does, not from the folder
    /// holding the link (a lexical clean-up would get this wrong and miss the input).
    @Test func resolvesLinksBeforeDotDot() throws {
        let root = try SweepFixtures.tempDir("resolve")
        defer { try? FileManager.default.removeItem(at: root) }
        let deep = root.appendingPathComponent("a/b/model")
        try FileManager.default.createDirectory(at: deep, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: root.appendingPathComponent("l"), withDestinationURL: deep)
        let viaLink = OutputTarget.resolved(URL(fileURLWithPath: root.path + "/l/.."))
        #expect(viaLink == OutputTarget.resolved(root.appendingPathComponent("a/b")))
        // A part that does not exist yet is appended as it will be created.
        #expect(OutputTarget.resolved(URL(fileURLWithPath: root.path + "/l/new/../x")) == viaLink + "/model/x")
        // So `quantize a/b/model --out l/..` is refused even with --force.
        #expect(throws: InputError.self) {
            try OutputTarget.check(URL(fileURLWithPath: root.path + "/l/.."), inputs: [deep], force: true)
        }
        try OutputTarget.check(root.appendingPathComponent("elsewhere"), inputs: [deep], force: false)
    }

    /// A Foundation error about a writer's temporary sibling names the file it stands for.
    @Test func foundationErrorsNameTheirFile() throws {
        let root = try SweepFixtures.tempDir("file-errors")
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("plain")
        try Data("x".utf8).write(to: file)
        // A directory under a regular file: ENOTDIR for everyone, root included.
        let tmp = file.appendingPathComponent(".out.tmp-123-456")
        do {
            try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: false)
            Issue.record("created a directory under a file")
        } catch {
            let mapped = try #require(FileErrors.oneLine(error) as? InputError)
            #expect(mapped.description == "\(file.path)/out: not a directory", "\(error)")
        }
        #expect(AtomicFile.target(ofTemporary: ".model.safetensors.tmp-42-7") == "model.safetensors")
        #expect(AtomicFile.target(ofTemporary: ".model.tmp-x-7") == nil)
        #expect(SweepRunner.ownerPid(ofTemporary: ".m__v.attempt-4242-99") == 4242)
        #expect(SweepRunner.ownerPid(ofTemporary: "m__v") == nil)
    }
}
