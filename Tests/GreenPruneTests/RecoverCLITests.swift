import Foundation
import Testing
import GreenPrune

/// `greenprune recover` run as a user would: impossible flags and bad data give one line on
/// stderr and a non-zero exit, and nothing is written at --out (or its checkpoint folder).
@Suite("Recover CLI")
struct RecoverCLITests {
    /// A tiny Llama with a tokenizer whose ids fit its 50-token vocabulary is not needed: every
    /// case here stops before the weights are used. The sp-bpe tokenizer makes data readable.
    static func setup(_ tag: String) throws -> (root: URL, model: URL, data: URL) {
        let root = try recoveryTempDir("cli-\(tag)")
        let model = root.appendingPathComponent("model")
        try writeTinyLlama(model, layerDims: [(4, 96), (4, 96)])
        let tokDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tokenizers/sp-bpe")
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: tokDir.appendingPathComponent(f), to: model.appendingPathComponent(f))
        }
        let data = root.appendingPathComponent("train.jsonl")
        try Data("{\"text\": \"the cat sat\"}\n{\"text\": \"on the mat\"}\n".utf8).write(to: data)
        return (root, model, data)
    }

    /// Runs recover with `args` after MODEL; returns status and stderr.
    static func recover(_ s: (root: URL, model: URL, data: URL), _ args: [String]) throws -> (Int32, String) {
        // The tiny model has 64 positions, fewer than the default cut-off of 256.
        let seqLen = args.contains("--seq-len") ? [] : ["--seq-len", "32"]
        let (status, _, err) = try SweepFixtures.run([try SweepFixtures.cli(), "recover", s.model.path] + args + seqLen + ["--no-energy", "--quiet"],
                                                     cwd: s.root)
        return (status, err)
    }

    @Test(arguments: [
        (["--rank", "0"], "--rank"),
        (["--dropout", "1"], "--dropout"),
        (["--alpha", "-2"], "--alpha"),
        (["--target", "q,x"], "'x' is not a projection"),
        (["--micro-batch", "16"], "--micro-batch"),
        (["--batch-size", "6", "--micro-batch", "4"], "not a multiple of --micro-batch"),
        (["--schedule", "step"], "schedule"),
        (["--seq-len", "1"], "--seq-len"),
        (["--lr", "0"], "--lr"),
        (["--max-steps", "0"], "--max-steps"),
        (["--max-minutes", "0"], "--max-minutes"),
        (["--val-size", "-1"], "--val-size"),
        (["--max-grad-norm", "-1"], "--max-grad-norm"),
        (["--resume", "--force"], "--resume"),
    ])
    func impossibleFlags(_ c: ([String], String)) throws {
        let s = try Self.setup("flags")
        defer { try? FileManager.default.removeItem(at: s.root) }
        let out = s.root.appendingPathComponent("out")
        let (status, err) = try Self.recover(s, ["--out", out.path, "--data", s.data.path] + c.0)
        #expect(status != 0)
        // The parser's usage lines follow a flag error; the first line is the message.
        let first = err.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("Error: ") && first.contains(c.1), "stderr: \(err)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test(arguments: [
        ("{\"text\": \"ok\"}\n{oops\n", "line 2 is not valid JSON"),
        ("{\"instruction\": \"x\"}\n", "needs string fields 'instruction' and 'output'"),
        ("", "holds no training records"),
    ])
    func badData(_ c: (String, String)) throws {
        let s = try Self.setup("data")
        defer { try? FileManager.default.removeItem(at: s.root) }
        try Data(c.0.utf8).write(to: s.data)
        let out = s.root.appendingPathComponent("out")
        let (status, err) = try Self.recover(s, ["--out", out.path, "--data", s.data.path])
        #expect(status != 0)
        let line = LostData.oneLine(err)
        #expect(line?.contains(s.data.path + ": ") == true && line?.contains(c.1) == true, "stderr: \(err)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(!FileManager.default.fileExists(atPath: out.path + ".checkpoint"))
    }

    /// --val-size that leaves nothing to train, a missing data file, a --seq-len past the
    /// model's positions: one line each.
    @Test func dataThatCannotTrain() throws {
        let s = try Self.setup("cannot")
        defer { try? FileManager.default.removeItem(at: s.root) }
        let out = s.root.appendingPathComponent("out").path
        var (status, err) = try Self.recover(s, ["--out", out, "--data", s.data.path, "--val-size", "2"])
        #expect(status != 0 && LostData.oneLine(err)?.contains("--val-size") == true, "stderr: \(err)")
        (status, err) = try Self.recover(s, ["--out", out, "--data", s.root.appendingPathComponent("none.jsonl").path])
        #expect(status != 0 && LostData.oneLine(err)?.contains("none.jsonl") == true, "stderr: \(err)")
        (status, err) = try Self.recover(s, ["--out", out, "--data", s.data.path, "--seq-len", "65"])
        #expect(status != 0 && LostData.oneLine(err)?.contains("exceeds the model's 64 positions") == true, "stderr: \(err)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// A quantized model is refused before any training (the merge needs float32 weights).
    @Test func quantizedModelIsRefusedUpFront() throws {
        let s = try Self.setup("quantized")
        defer { try? FileManager.default.removeItem(at: s.root) }
        let cfgURL = s.model.appendingPathComponent("config.json")
        var cfg = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: cfgURL)) as? [String: Any])
        cfg["quantization_config"] = ["quant_method": "compressed-tensors"]
        try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
        let out = s.root.appendingPathComponent("out")
        let (status, err) = try Self.recover(s, ["--out", out.path, "--data", s.data.path])
        #expect(status != 0 && LostData.oneLine(err)?.contains(cfgURL.path + ": describes a quantized model") == true, "stderr: \(err)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    /// OUT as other commands treat it: an existing one is kept unless --force, the input never;
    /// a leftover checkpoint needs --resume or --force, and --resume needs a checkpoint.
    @Test func outputHandling() throws {
        let s = try Self.setup("out")
        defer { try? FileManager.default.removeItem(at: s.root) }
        let out = s.root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: out.appendingPathComponent("mine.txt"))
        var (status, err) = try Self.recover(s, ["--out", out.path, "--data", s.data.path])
        #expect(status != 0 && LostData.oneLine(err)?.contains("--force") == true, "stderr: \(err)")
        #expect(FileManager.default.contents(atPath: out.appendingPathComponent("mine.txt").path) == Data("keep".utf8))
        (status, err) = try Self.recover(s, ["--out", s.model.path, "--data", s.data.path, "--force"])
        #expect(status != 0 && LostData.oneLine(err)?.contains("is the input") == true, "stderr: \(err)")
        #expect(FileManager.default.fileExists(atPath: s.model.appendingPathComponent("model.safetensors").path))

        let fresh = s.root.appendingPathComponent("fresh")
        (status, err) = try Self.recover(s, ["--out", fresh.path, "--data", s.data.path, "--resume"])
        #expect(status != 0 && LostData.oneLine(err)?.contains("holds no checkpoint") == true, "stderr: \(err)")
        let ckpt = URL(fileURLWithPath: fresh.path + ".checkpoint")
        try FileManager.default.createDirectory(at: ckpt, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: ckpt.appendingPathComponent("state.json"))
        (status, err) = try Self.recover(s, ["--out", fresh.path, "--data", s.data.path])
        #expect(status != 0 && LostData.oneLine(err)?.contains("--resume") == true, "stderr: \(err)")
        #expect(FileManager.default.fileExists(atPath: ckpt.appendingPathComponent("state.json").path))
    }
}

/// `greenprune recover` training a tiny Llama to the end: a run stopped after step 5 (as a kill
/// would stop it) and resumed writes the same files as the uninterrupted run, and so does one
/// killed with SIGKILL at an arbitrary point.
@Suite("Recover CLI resume", .serialized)
struct RecoverResumeCLITests {
    /// The tiny Llama (vocabulary 50) with a letters-only tokenizer whose ids fit it: ▁ and a–z
    /// (ids 3–29) after <unk>, <s>, </s>; and `records` lines of lowercase text.
    static func setup(_ tag: String, records: Int) throws -> (root: URL, model: URL, data: URL) {
        let root = try recoveryTempDir("resume-\(tag)")
        let model = root.appendingPathComponent("model")
        try writeTinyLlama(model, layerDims: [(4, 96), (2, 64)])
        var vocab: [String: Int] = ["<unk>": 0, "<s>": 1, "</s>": 2, "\u{2581}": 3]
        for (i, c) in "abcdefghijklmnopqrstuvwxyz".enumerated() { vocab[String(c)] = 4 + i }
        let special = ["<unk>", "<s>", "</s>"].enumerated().map {
            ["id": $0.offset, "content": $0.element, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true] as [String: Any]
        }
        let tokenizer: [String: Any] = [
            "version": "1.0", "added_tokens": special,
            "normalizer": ["type": "Sequence", "normalizers": [["type": "Prepend", "prepend": "\u{2581}"],
                                                                ["type": "Replace", "pattern": ["String": " "], "content": "\u{2581}"]]],
            "post_processor": ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                               "pair": [["Sequence": ["id": "A", "type_id": 0]], ["Sequence": ["id": "B", "type_id": 1]]],
                               "special_tokens": ["<s>": ["id": "<s>", "ids": [1], "tokens": ["<s>"]]]],
            "model": ["type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": false, "vocab": vocab, "merges": [String]()],
        ]
        try JSONSerialization.data(withJSONObject: tokenizer).write(to: model.appendingPathComponent("tokenizer.json"))
        try Data(#"{"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}"#.utf8)
            .write(to: model.appendingPathComponent("tokenizer_config.json"))
        let words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "sun", "is", "hot"]
        var g = SplitMix64(seed: 9)
        let lines = (0 ..< records).map { _ in
            #"{"text": ""# + (0 ..< 6).map { _ in words[Int(g.next() % UInt64(words.count))] }.joined(separator: " ") + #""}"#
        }
        let data = root.appendingPathComponent("train.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data)
        return (root, model, data)
    }

    static func flags(_ s: (root: URL, model: URL, data: URL), out: URL, steps: Int) throws -> [String] {
        [try SweepFixtures.cli(), "recover", s.model.path, "--out", out.path, "--data", s.data.path, "--seq-len", "24",
         "--batch-size", "2", "--micro-batch", "1", "--max-steps", "\(steps)", "--lr", "1e-2", "--warmup-steps", "2",
         "--val-size", "4", "--eval-every", "3", "--seed", "7", "--no-energy", "--quiet"]
    }

    /// The files of a finished run that must not depend on interruptions: the merged weights,
    /// the PEFT adapter and recovery.json's curves.
    static func expectSameResult(_ a: URL, _ b: URL) throws {
        for f in ["model.safetensors", "adapter/adapter_model.safetensors", "adapter/adapter_config.json", "config.json"] {
            let x = try Data(contentsOf: a.appendingPathComponent(f)), y = try Data(contentsOf: b.appendingPathComponent(f))
            #expect(x == y, "\(f) differs")
        }
        func curves(_ dir: URL) throws -> [String] {
            let json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("recovery.json"))) as? [String: Any])
            return try ["loss", "validation_loss", "steps", "tokens"].map {
                String(decoding: try JSONSerialization.data(withJSONObject: json[$0] ?? NSNull(), options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
            }
        }
        #expect(try curves(a) == curves(b))
    }

    @Test func stoppedAndResumedEqualsUninterrupted() throws {
        let s = try Self.setup("stop", records: 30)
        defer { try? FileManager.default.removeItem(at: s.root) }
        let full = s.root.appendingPathComponent("full"), parts = s.root.appendingPathComponent("parts")
        var (status, _, err) = try SweepFixtures.run(try Self.flags(s, out: full, steps: 10), cwd: s.root)
        #expect(status == 0, "stderr: \(err)")
        (status, _, err) = try SweepFixtures.run(try Self.flags(s, out: parts, steps: 10) + ["--checkpoint-every", "5", "--stop-after", "5"], cwd: s.root)
        #expect(status == 0, "stderr: \(err)")
        #expect(!FileManager.default.fileExists(atPath: parts.path))
        #expect(FileManager.default.fileExists(atPath: parts.path + ".checkpoint/state.json"))
        (status, _, err) = try SweepFixtures.run(try Self.flags(s, out: parts, steps: 10) + ["--checkpoint-every", "5", "--resume"], cwd: s.root)
        #expect(status == 0, "stderr: \(err)")
        try Self.expectSameResult(full, parts)
        #expect(!FileManager.default.fileExists(atPath: parts.path + ".checkpoint"), "the checkpoint outlived the finished run")
        // The trained model is not the base: the adapters moved.
        #expect(try Data(contentsOf: full.appendingPathComponent("model.safetensors")) != Data(contentsOf: s.model.appendingPathComponent("model.safetensors")))
    }

    /// A run trained on bf16 weights resumed on float32 ones (or the other way) would mix two
    /// forwards' gradients: the resume is refused in one line naming the checkpoint's state.json,
    /// the checkpoint stays, and the same --dtype resumes it.
    @Test func resumeWithOtherDTypeIsRefused() throws {
        let s = try Self.setup("dtype", records: 30)
        defer { try? FileManager.default.removeItem(at: s.root) }
        let out = s.root.appendingPathComponent("out")
        let argv = try Self.flags(s, out: out, steps: 6) + ["--checkpoint-every", "1"]
        var (status, _, err) = try SweepFixtures.run(argv + ["--dtype", "bf16", "--stop-after", "2"], cwd: s.root)
        #expect(status == 0, "stderr: \(err)")
        let state = out.path + ".checkpoint/state.json"
        let before = try Data(contentsOf: URL(fileURLWithPath: state))
        for other in [[], ["--dtype", "f32"], ["--dtype", "f16"]] {
            (status, _, err) = try SweepFixtures.run(argv + other + ["--resume"], cwd: s.root)
            let line = LostData.oneLine(err)
            #expect(status != 0 && line?.contains(state + ": ") == true && line?.contains("--dtype bf16") == true,
                    "\(other): stderr: \(err)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: state)) == before, "\(other) changed the checkpoint")
            #expect(!FileManager.default.fileExists(atPath: out.path))
        }
        (status, _, err) = try SweepFixtures.run(argv + ["--dtype", "bf16", "--resume"], cwd: s.root)
        #expect(status == 0, "stderr: \(err)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("model.safetensors").path))
    }

    /// SIGKILL while checkpoints are being written every step, then --resume: the uninterrupted
    /// run's files.
    @Test func killedAndResumedEqualsUninterrupted() throws {
        let s = try Self.setup("kill", records: 30)
        defer { try? FileManager.default.removeItem(at: s.root) }
        let steps = 300
        let full = s.root.appendingPathComponent("full"), killed = s.root.appendingPathComponent("killed")
        var (status, _, err) = try SweepFixtures.run(try Self.flags(s, out: full, steps: steps) + ["--checkpoint-every", "1"], cwd: s.root)
        #expect(status == 0, "stderr: \(err)")

        let argv = try Self.flags(s, out: killed, steps: steps) + ["--checkpoint-every", "1"]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Kill once the run is under way: a few checkpoints exist, far from the last step.
        let state = URL(fileURLWithPath: killed.path + ".checkpoint/state.json")
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning, Date() < deadline {
            if let d = try? Data(contentsOf: state), let j = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
               let step = j["step"] as? Int, step >= 3 { break }
            usleep(2000)
        }
        let wasRunning = p.isRunning
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(wasRunning, "the run ended before it could be killed")
        #expect(p.terminationReason == .uncaughtSignal)
        #expect(!FileManager.default.fileExists(atPath: killed.appendingPathComponent("model.safetensors").path))
        (status, _, err) = try SweepFixtures.run(argv + ["--resume"], cwd: s.root)
        #expect(status == 0, "stderr: \(err)")
        try Self.expectSameResult(full, killed)
    }
}
