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
