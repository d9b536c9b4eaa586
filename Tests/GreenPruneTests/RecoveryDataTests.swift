import Foundation
import Testing
import GreenPrune

/// Training data for `recover`: text and Alpaca records, the response-only mask, the cut-off,
/// the held-out split and epoch orders, and one-line errors for bad files.
@Suite("Recovery data")
struct RecoveryDataTests {
    /// A SentencePiece-style BPE tokenizer that adds BOS and knows EOS `</s>`.
    static func tokenizer() throws -> Tokenizer {
        try TokenizerLoader.load(directory: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizers/sp-bpe"))
    }

    static func file(_ text: String, _ name: String = "train.jsonl") throws -> URL {
        let d = try recoveryTempDir("data")
        let u = d.appendingPathComponent(name)
        try Data(text.utf8).write(to: u)
        return u
    }

    /// A text record: BOS + the text's tokens + EOS, every target counted; cut at the cut-off
    /// with no EOS added.
    @Test func textRecords() throws {
        let tok = try Self.tokenizer()
        let text = "the quick brown fox jumps over the lazy dog"
        let url = try Self.file("{\"text\": \"\(text)\", \"url\": \"x\"}\n\n{\"text\": \"a\"}\n")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let ids = try tok.encode(text, addSpecialTokens: true)
        #expect(ids.first == tok.bosTokenId)
        let eos = try #require(tok.eosTokenId)
        let ex = try TrainingData.examples(file: url, tokenizer: tok, seqLen: 256)
        #expect(ex.count == 2)
        #expect(ex[0].tokens == ids + [eos])
        #expect(ex[0].targetCount == ids.count)
        let cut = try TrainingData.examples(file: url, tokenizer: tok, seqLen: 4)
        #expect(cut[0].tokens == Array(ids.prefix(4)))
    }

    /// An Alpaca record: the prompt LLM-Pruner uses, and the loss only on the response (its
    /// tokens decode to the output, then EOS).
    @Test func alpacaRecords() throws {
        let tok = try Self.tokenizer()
        let url = try Self.file("""
            [{"instruction": "Name a colour.", "input": "", "output": "blue"},
             {"instruction": "Add the numbers.", "input": "2 and 3", "output": "five"}]
            """, "alpaca.json")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let records = try TrainingData.records(file: url)
        #expect(records == [.alpaca(instruction: "Name a colour.", input: "", output: "blue"),
                            .alpaca(instruction: "Add the numbers.", input: "2 and 3", output: "five")])
        #expect(TrainingData.alpacaPrompt(instruction: "Name a colour.", input: "") ==
            "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName a colour.\n\n### Response:\n")
        #expect(TrainingData.alpacaPrompt(instruction: "Add.", input: "2 and 3") ==
            "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:\n")
        let ex = try TrainingData.examples(file: url, tokenizer: tok, seqLen: 256)
        for (e, r) in zip(ex, records) {
            guard case .alpaca(let i, let inp, let out) = r else { continue }
            let promptCount = try tok.encode(TrainingData.alpacaPrompt(instruction: i, input: inp), addSpecialTokens: true).count
            #expect(e.mask.firstIndex(of: true) == promptCount)
            #expect(e.mask[promptCount...].allSatisfy { $0 })
            let targets = e.tokens.indices.filter { e.mask[$0] }.map { e.tokens[$0] }
            #expect(targets.last == tok.eosTokenId)
            #expect(tok.decode(Array(targets.dropLast()), skipSpecialTokens: true).trimmingCharacters(in: .whitespaces) == out)
        }
        // A cut-off inside the prompt leaves no target: the record is dropped, and a file of
        // only such records is an error naming it.
        #expect(throws: InputError.self) { try TrainingData.examples(file: url, tokenizer: tok, seqLen: 8) }
    }

    /// Bad files give one line naming the file and the place.
    @Test(arguments: [
        ("{\"text\": \"ok\"}\nnot json\n", "line 2 is not valid JSON"),
        ("1\n", "line 1 is not a JSON object"),
        ("[1, 2]", "record 1 is not a JSON object"),
        ("{\"body\": \"x\"}\n", "line 1 has neither a string field 'text' nor Alpaca fields"),
        ("{\"instruction\": \"x\"}\n", "line 1: an Alpaca record needs string fields 'instruction' and 'output'"),
        ("{\"instruction\": \"x\", \"output\": \"y\", \"input\": 3}\n", "line 1: field 'input' is not a string"),
        ("{\"text\": \"x\"}\n{\"instruction\": \"x\", \"output\": \"y\"}\n", "line 2 is an Alpaca record but the first record is a text one"),
        ("\n  \n", "holds no training records"),
        ("[{\"text\": 1}]", "record 1 has neither"),
        ("[{\"text\": \"x\"", "starts with '[' but is not a JSON array"),
    ])
    func badFiles(_ c: (String, String)) throws {
        let url = try Self.file(c.0)
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        do {
            _ = try TrainingData.examples(file: url, tokenizer: try Self.tokenizer(), seqLen: 64)
            Issue.record("accepted \(c.0)")
        } catch let e as InputError {
            #expect(e.source == url.path)
            #expect(e.problem.contains(c.1), "\(e)")
            #expect(!e.description.contains("\n"))
        }
    }

    @Test func missingFileAndDirectory() throws {
        let d = try recoveryTempDir("missing")
        defer { try? FileManager.default.removeItem(at: d) }
        #expect(throws: InputError.self) { try TrainingData.records(file: d.appendingPathComponent("none.jsonl")) }
        #expect(throws: InputError.self) { try TrainingData.records(file: d) }
    }

    /// The held-out slice: disjoint, the sizes asked for, the same for the same seed; an
    /// impossible size names --val-size. Epoch orders are permutations, new each epoch.
    @Test func splitAndOrder() throws {
        let ex = (0 ..< 30).map { TrainingExample(tokens: [$0, $0 + 1], mask: [false, true]) }
        let (t, v) = try TrainingOrder.split(ex, validationSize: 7, seed: 4)
        #expect(t.count == 23 && v.count == 7)
        #expect(Set((t + v).map(\.tokens)).count == 30)
        let again = try TrainingOrder.split(ex, validationSize: 7, seed: 4)
        #expect(again.validation == v && again.train == t)
        #expect(try TrainingOrder.split(ex, validationSize: 7, seed: 5).validation != v)
        #expect(throws: InputError.self) { try TrainingOrder.split(ex, validationSize: 30, seed: 4) }
        let e0 = TrainingOrder.epochOrder(count: 23, epoch: 0, seed: 4), e1 = TrainingOrder.epochOrder(count: 23, epoch: 1, seed: 4)
        #expect(e0.sorted() == Array(0 ..< 23) && e1.sorted() == Array(0 ..< 23))
        #expect(e0 != e1)
        #expect(e0 == TrainingOrder.epochOrder(count: 23, epoch: 0, seed: 4))
        let (tokens, mask) = TrainingOrder.padded([TrainingExample(tokens: [1, 2, 3], mask: [true, true, true]),
                                                   TrainingExample(tokens: [4], mask: [true])])
        #expect(tokens == [[1, 2, 3], [4, 0, 0]] && mask == [[true, true, true], [true, false, false]])
    }
}
