import Foundation
import GreenPrune
import Testing

/// Hostile or careless model, config and data inputs (issue 22, "Crashes and hangs" and "Wrong
/// numbers with exit code 0"). Each input is built here in a temporary directory; each case
/// asserts a one-line `file: problem` error, a non-zero exit for the CLI, and that no output
/// directory (nor a hidden temporary beside it) was left behind.
@Suite("Hostile model input")
final class HostileModelInputTests {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("gp-hostile-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    // MARK: helpers

    /// A valid tiny Llama directory (C 64, 4 heads over 2 KV heads of 16, 2 layers, context 64),
    /// then `edit` applied to its config.json.
    func tinyModel(_ name: String, config edit: (inout [String: Any]) -> Void = { _ in },
                   transform: ((String, [Float], [Int]) -> [Float])? = nil) throws -> URL {
        let dir = root.appendingPathComponent(name)
        try writeTinyLlama(dir, layerDims: [(4, 96), (4, 96)], transform: transform)
        let url = dir.appendingPathComponent("config.json")
        var cfg = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&cfg)
        try JSONSerialization.data(withJSONObject: cfg).write(to: url)
        return dir
    }

    /// The tiny model's tensors as (name, dtype, shape, bytes), to rewrite them broken.
    func tinyEntries(_ dir: URL) throws -> [(String, DType, [Int], Data)] {
        let r = try SafeTensorsReader(dir)
        return try r.names.map { n in
            let info = try #require(r.info(n))
            let f = try r.floats(n)
            let data = Data(bytes: f.pointer, count: f.count * 4)
            return (n, DType.f32, info.shape, data)
        }
    }

    func writeEntries(_ entries: [(String, DType, [Int], Data)], to dir: URL) throws {
        try SafeTensorsWriter.write(entries.map { e in SafeTensorsEntry(name: e.0, dtype: e.1, shape: e.2) { e.3 } },
                                    to: dir.appendingPathComponent("model.safetensors"))
    }

    struct CLIResult { var status: Int32; var stdout: String; var stderr: String; var seconds: Double }

    /// Runs the built CLI (or, for `bench …`, the built benchmarks with the rest of `args`) with a
    /// hard timeout (a hang is killed and reported as status −1).
    func cli(_ args: [String], timeout: Double = 60) throws -> CLIResult {
        let p = Process()
        let bench = args.first == "bench"
        p.executableURL = try bench ? CLIBinary.benchURL() : CLIBinary.url()
        p.arguments = bench ? Array(args.dropFirst()) : args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        let start = Date()
        try p.run()
        // SIGKILL, not SIGTERM: a process stuck allocating or blocked in open(2) must stop now.
        let pid = p.processIdentifier
        let killer = DispatchWorkItem { if p.isRunning { kill(pid, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        killer.cancel()
        let timedOut = Date().timeIntervalSince(start) >= timeout
        return CLIResult(status: timedOut ? -1 : p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                         stderr: String(decoding: e, as: UTF8.self), seconds: Date().timeIntervalSince(start))
    }

    /// A failed run: non-zero exit, nothing on stdout, stderr one line naming `file` and saying `phrase`.
    func expectCleanError(_ r: CLIResult, file: String, _ phrase: String, _ label: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status > 0, "\(label): exit \(r.status), stderr \(r.stderr)", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "\(label): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(file + ":") && r.stderr.contains(phrase), "\(label): \(r.stderr)", sourceLocation: sourceLocation)
    }

    /// Neither `out` nor a hidden temporary sibling of it exists.
    func expectNothingWritten(_ out: URL, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(!FileManager.default.fileExists(atPath: out.path), "\(label): \(out.path) was written", sourceLocation: sourceLocation)
        let parent = out.deletingLastPathComponent()
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: parent.path).filter { $0.hasPrefix("." + out.lastPathComponent) }
        #expect(leftovers.isEmpty, "\(label): left \(leftovers)", sourceLocation: sourceLocation)
    }

    /// Every command that reads a model directory, writing (where it writes) to `out` (`bench`
    /// runs greenprune-bench).
    func commands(_ model: URL, out: URL) -> [(String, [String])] {
        [("inspect", ["inspect", model.path]),
         ("quantize", ["quantize", model.path, "--out", out.path, "--bits", "8", "--quiet"]),
         ("prune", ["prune", model.path, "--out", out.path, "--ratio", "0.25", "--importance", "l1",
                    "--uniform", "--no-energy", "--quiet"]),
         ("evaluate", ["evaluate", model.path, "--tasks", "wikitext", "--output", out.path, "--quiet"]),
         ("greenprune-bench model", ["bench", "model", "--model", model.path, "--batch", "1", "--time", "8", "--repeat", "1"]),
         ("score", ["score", model.path, "--text", "a b c"]),
         ("generate", ["generate", model.path, "--prompt", "a", "--max-tokens", "1"]),
         ("embed", ["embed", model.path, "--text", "a b c"])]
    }

    // MARK: config.json

    /// Invalid config values fail every command with one line naming config.json, before any
    /// allocation sized by them (max_position_embeddings 0 crashed `evaluate`; 10⁹ layers ran
    /// for minutes), and quantize/prune write nothing.
    @Test(arguments: [
        ("max_position_embeddings", 0 as Any, "max_position_embeddings"),
        ("max_position_embeddings", -8, "max_position_embeddings"),
        ("hidden_size", 0, "hidden_size"),
        ("hidden_size", -64, "hidden_size"),
        ("num_attention_heads", 0, "num_attention_heads"),
        ("num_key_value_heads", 8, "num_key_value_heads"),
        ("num_key_value_heads", 3, "num_key_value_heads"),
        ("head_dim", 15, "head_dim"),
        ("rms_norm_eps", 0, "rms_norm_eps"),
        ("rms_norm_eps", 1e-60, "rms_norm_eps"),
        ("num_hidden_layers", 1_000_000_000, "num_hidden_layers"),
    ] as [(String, Any, String)])
    func invalidConfigIsRefusedByEveryCommand(key: String, value: Any, phrase: String) throws {
        let model = try tinyModel("bad-\(key)") { $0[key] = value }
        let configPath = model.appendingPathComponent("config.json").path
        #expect {
            _ = try ModelLoader.load(model)
        } throws: { e in
            (e as? InputError)?.source == configPath && (e as? InputError)?.problem.contains(phrase) == true
        }
        let out = root.appendingPathComponent("out-\(key)")
        for (label, args) in commands(model, out: out) {
            let r = try cli(args)
            expectCleanError(r, file: configPath, phrase, "\(label) \(key)=\(value)")
            #expect(r.seconds < 30, "\(label) \(key)=\(value) took \(r.seconds) s")
        }
        try expectNothingWritten(out, "\(key)=\(value)")
    }

    // MARK: tensors

    /// Missing, mis-shaped, integer and non-finite tensors fail every command with one line naming
    /// model.safetensors and the tensor; quantize/prune write nothing.
    @Test(arguments: ["missing", "wrong-shape", "integer", "nan-q-proj", "inf-norm"])
    func invalidTensorsAreRefusedByEveryCommand(kind: String) throws {
        let q0 = "model.layers.0.self_attn.q_proj.weight"
        let model: URL
        let phrase: String
        switch kind {
        case "nan-q-proj", "inf-norm":
            let target = kind == "nan-q-proj" ? q0 : "model.layers.1.input_layernorm.weight"
            model = try tinyModel(kind, transform: { name, v, _ in
                name == target ? v.enumerated().map { $0.offset == 5 ? (kind == "nan-q-proj" ? .nan : .infinity) : $0.element } : v
            })
            phrase = "tensor '\(target)' holds a non-finite value"
        default:
            model = try tinyModel(kind)
            var entries = try tinyEntries(model)
            let down1 = "model.layers.1.mlp.down_proj.weight"
            switch kind {
            case "missing":
                entries.removeAll { $0.0 == down1 }
                phrase = down1
            case "wrong-shape":
                // Half the query rows: o_proj's columns no longer match them.
                let i = try #require(entries.firstIndex { $0.0 == q0 })
                entries[i].2 = [entries[i].2[0] / 2, entries[i].2[1]]
                entries[i].3 = entries[i].3.prefix(entries[i].3.count / 2)
                phrase = "model.layers.0.self_attn.o_proj.weight is [64, 64], expected [64, 32]"
            default:
                let i = try #require(entries.firstIndex { $0.0 == q0 })
                entries[i].1 = .i32
                phrase = "tensor '\(q0)' is I32"
            }
            try writeEntries(entries, to: model)
        }
        let file = model.appendingPathComponent("model.safetensors").path
        #expect(throws: InputError.self) { _ = try ModelLoader.load(model) }
        let out = root.appendingPathComponent("out-\(kind)")
        for (label, args) in commands(model, out: out) {
            expectCleanError(try cli(args), file: file, phrase, "\(label) \(kind)")
        }
        try expectNothingWritten(out, kind)
    }

    /// A FIFO (or any non-regular file) where a model file belongs is an error, not a hang.
    @Test(arguments: ["model.safetensors", "config.json"])
    func nonRegularModelFileIsRefusedWithoutBlocking(file: String) throws {
        let model = try tinyModel("fifo-\(file)")
        let path = model.appendingPathComponent(file).path
        try FileManager.default.removeItem(atPath: path)
        #expect(mkfifo(path, 0o600) == 0)
        let r = try cli(["inspect", model.path], timeout: 20)
        #expect(r.status != -1, "inspect blocked on the FIFO")
        expectCleanError(r, file: path, "not a regular file", "inspect fifo \(file)")
        #expect(throws: InputError.self) { try RegularFile.check(URL(fileURLWithPath: path)) }
    }

    // MARK: GGUF

    /// A GGUF with a valid llama header except `block_count`, holding two tensors.
    func gguf(blockCount: GGUFValue, name: String) throws -> URL {
        var w = try GGUFWriter()
        try w.set("general.architecture", .string("llama"))
        try w.set("llama.embedding_length", .uint32(32))
        try w.set("llama.attention.head_count", .uint32(2))
        try w.set("llama.feed_forward_length", .uint32(64))
        try w.set("llama.context_length", .uint32(64))
        try w.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        try w.set("llama.block_count", blockCount)
        try w.addTensor(name: "token_embd.weight", shape: [4, 32], type: .f32, floats: [Float](repeating: 0.5, count: 128))
        try w.addTensor(name: "output_norm.weight", shape: [32], type: .f32, floats: [Float](repeating: 1, count: 32))
        let url = root.appendingPathComponent(name)
        try w.write(to: url)
        return url
    }

    /// `llama.block_count` 0xFFFFFFFF or 2^62 is refused at once (it grew without bound).
    @Test(arguments: [GGUFValue.uint32(0xFFFF_FFFF), .uint64(1 << 62)])
    func ggufBlockCountBeyondTheTensorTableFailsFast(count: GGUFValue) throws {
        let url = try gguf(blockCount: count, name: "blocks-\(count.int ?? 0).gguf")
        let out = root.appendingPathComponent("converted")
        let r = try cli(["convert", url.path, "--out", out.path, "--quiet"], timeout: 30)
        expectCleanError(r, file: url.path, "llama.block_count \(count.int ?? 0)", "convert block_count")
        #expect(r.seconds < 10, "took \(r.seconds) s")
        try expectNothingWritten(out, "convert block_count")
    }

    /// A GGUF tokenizer whose merges name tokens outside the vocabulary never becomes a
    /// tokenizer.json (tokenizers would refuse to load it).
    @Test func ggufMergesOfUnknownTokensAreRefused() throws {
        var w = try GGUFWriter()
        try w.set("tokenizer.ggml.model", .string("gpt2"))
        try w.set("tokenizer.ggml.tokens", .array(elementType: 8, values: ["a", "b", "ab"].map { .string($0) }))
        try w.set("tokenizer.ggml.merges", .array(elementType: 8, values: ["a b", "b c"].map { .string($0) }))
        let url = root.appendingPathComponent("merges.gguf")
        try w.write(to: url)
        let file = try GGUFFile(url: url)
        #expect {
            _ = try GGUFTokenizerExport(file: file)
        } throws: { e in
            (e as? InputError)?.source == url.path && (e as? InputError)?.problem.contains("'b c' names 'c'") == true
        }
        // The same vocabulary with valid merges is accepted, so the refusal is the merge's.
        try w.set("tokenizer.ggml.merges", .array(elementType: 8, values: [.string("a b")]))
        try w.write(to: url)
        _ = try GGUFTokenizerExport(file: try GGUFFile(url: url))
    }

    // MARK: windows longer than the context

    /// A window longer than the model's positions is an error naming the flag and the limit,
    /// never truncated while the metric still divides by its full length; a continuation that
    /// cannot be scored whole is an error; rolling requests of any length score every token.
    @Test func windowsLongerThanTheContextAreErrors() throws {
        let enc = RequestEncoder(tokenizer: CharTokenizer(), maxLength: 8)
        #expect {
            _ = try enc.encode(.tokenWindow(tokens: Array(3 ..< 12)))
        } throws: { e in
            (e as? InputError)?.source == "--seq-len" && (e as? InputError)?.problem.contains("9 exceeds the model's context of 8") == true
        }
        #expect(try enc.encode(.tokenWindow(tokens: Array(3 ..< 11))).count == 1)
        #expect(throws: InputError.self) { _ = try enc.encode(.loglikelihood(context: "ab", continuation: String(repeating: "x", count: 9))) }
        // Context is what gets dropped: a long context with a short continuation still scores it all.
        let kept = try enc.encode(.loglikelihood(context: String(repeating: "c", count: 30), continuation: "xyz"))
        #expect(kept.count == 1 && kept[0].tokens.count == 9 && kept[0].tokens.count - kept[0].scoreFrom == 3)
        // Rolling: 50 characters in windows of ≤ 8 inputs, every character predicted once.
        let windows = try enc.encode(.loglikelihoodRolling(text: String(repeating: "abcde", count: 10)))
        #expect(windows.allSatisfy { $0.tokens.count <= 9 })
        #expect(windows.reduce(0) { $0 + $1.tokens.count - $1.scoreFrom } == 50)
    }

    /// The CLI: `wikitext2_chunked --seq-len 9000` on SmolLM2 (context 8192) exits non-zero
    /// naming --seq-len and 8192, and writes no results.
    @Test func chunkedSeqLenBeyondSmolLM2ContextFails() throws {
        let model = Paths.defaultDecoder
        guard FileManager.default.fileExists(atPath: model.appendingPathComponent("model.safetensors").path) else {
            Issue.record("\(model.path) is missing: run scripts/fetch-models.sh first"); return
        }
        // A synthetic corpus long enough for one 9000-token window (so only the length can fail).
        var g = SplitMix(state: 7)
        let words = ["the", "of", "and", "in", "to", "was", "is", "for", "on", "as", "by", "with", "river", "album"]
        var text = " = Title = \n \n"
        for _ in 0 ..< 400 {
            text += " " + (0 ..< 40).map { _ in words[Int(g.next() % UInt64(words.count))] }.joined(separator: " ") + " . \n"
        }
        let data = try TempDataDirectory(["wikitext2/wiki.test.raw": text])
        let out = root.appendingPathComponent("eval-9000")
        let r = try cli(["evaluate", model.path, "--tasks", "wikitext2_chunked", "--seq-len", "9000", "--limit", "1",
                         "--data-dir", data.url.path, "--output", out.path, "--quiet"], timeout: 300)
        expectCleanError(r, file: "--seq-len", "8192", "evaluate --seq-len 9000")
        #expect(r.stdout.isEmpty)
        try expectNothingWritten(out, "evaluate --seq-len 9000")
    }

    // MARK: non-finite metrics

    /// A scorer whose log-probabilities are NaN (what overflowing activations give).
    final class NaNScorer: TokenScorer {
        var maxLength: Int { 64 }
        var vocabularySize: Int { 512 }
        func score(_ batch: [ScoreRequest]) throws -> [ScoreResult] {
            batch.map { r in
                let n = r.tokens.count - r.scoreFrom
                return ScoreResult(logprobs: [Float](repeating: .nan, count: n), greedy: [Bool](repeating: false, count: n))
            }
        }
        func score(prefix: [Int], continuations: [[Int]]) throws -> [ScoreResult] {
            try score(continuations.map { ScoreRequest(tokens: prefix + $0, scoreFrom: prefix.count) })
        }
    }

    /// A NaN metric is an error naming the task, never "nan" on stdout or "N/A" in results.json.
    @Test func nonFiniteMetricIsAnErrorNamingTheTask() throws {
        let data = try TempDataDirectory(["wikitext2/wiki.test.raw": " = T = \n \n abc def ghi jkl mno pqr stu vwx \n"])
        let task = ChunkedPerplexityTask(.wikitext2)
        let setup = TaskSetup(dataDirectory: data.url, sequenceLength: 8, tokenizer: CharTokenizer())
        let nan = try Evaluator(model: NaNScorer(), tokenizer: CharTokenizer(), showProgress: false).run(task, setup: setup)
        #expect(nan.values["perplexity"]?.value.isNaN == true)
        #expect {
            _ = try EvaluationRun.finite(TaskReport(nan))
        } throws: { e in
            (e as? InputError)?.source == "wikitext2_chunked" && (e as? InputError)?.problem.contains("perplexity") == true
        }
        // The same task on a finite scorer passes through unchanged.
        let ok = try Evaluator(model: DummyLM(), tokenizer: CharTokenizer(), showProgress: false).run(task, setup: setup)
        #expect(try EvaluationRun.finite(TaskReport(ok)).values["perplexity"]?.value.isFinite == true)
    }

    // MARK: CRLF

    /// CRLF data files read as their LF originals: a CRLF wiki.test.raw gives the same documents
    /// and the same perplexities (wikitext and wikitext2_chunked); a CRLF HellaSwag file gives
    /// the same documents. A lone CR inside a line stays.
    @Test func crlfDataFilesGiveTheLFResults() throws {
        let wiki = " = Alpha = \n \n The river runs . \n \n = = Beta = = \n Some @-@ text , here . \n = Gamma = \n \n Last\rline . \n"
        let lf = try TempDataDirectory(["wikitext2/wiki.test.raw": wiki])
        let crlf = try TempDataDirectory(["wikitext2/wiki.test.raw": wiki.replacingOccurrences(of: "\n", with: "\r\n")])
        #expect(try Data(contentsOf: crlf.url.appendingPathComponent("wikitext2/wiki.test.raw")).contains(13))
        for task in [WikitextTask() as EvaluationTask, ChunkedPerplexityTask(.wikitext2)] {
            func run(_ d: TempDataDirectory) throws -> TaskOutcome {
                let setup = TaskSetup(dataDirectory: d.url, sequenceLength: 16, tokenizer: CharTokenizer())
                return try Evaluator(model: DummyLM(), tokenizer: CharTokenizer(), showProgress: false).run(task, setup: setup)
            }
            let a = try run(lf), b = try run(crlf)
            #expect(a.documents.map(\.requests) == b.documents.map(\.requests), "\(task.name)")
            #expect(a.documents.map(\.weights) == b.documents.map(\.weights), "\(task.name)")
            for m in task.metrics { #expect(a.values[m.name]?.value == b.values[m.name]?.value, "\(task.name) \(m.name)") }
            #expect(a.documents.count == (task.name == "wikitext" ? 2 : a.documents.count))
        }
        #expect(DataFiles.normalizingLineEnds("a\r\nb\rc\r\r\n") == "a\nb\rc\r\n")

        let hella = "A man sits\n2\nand eats .\nand runs .\nand sleeps .\nand reads .\nA dog\n1\nbarks .\nsits .\nruns .\nflies .\n"
        let hl = try TempDataDirectory(["hellaswag/hellaswag_val_full.txt": hella])
        let hc = try TempDataDirectory(["hellaswag/hellaswag_val_full.txt": hella.replacingOccurrences(of: "\n", with: "\r\n")])
        let task = try languageTask("hellaswag")
        let a = try task.documents(TaskSetup(dataDirectory: hl.url)), b = try task.documents(TaskSetup(dataDirectory: hc.url))
        #expect(a.count == 2)
        #expect(a.map(\.requests) == b.map(\.requests))
    }
}
