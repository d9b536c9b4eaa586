import Foundation

/// One training sequence: token ids and which of them are loss targets.
public struct TrainingExample: Equatable, Sendable {
    /// Token ids (T ≤ the cut-off).
    public var tokens: [Int]
    /// mask[t]: token t is a target, predicted from position t − 1 (mask[0] is never used).
    public var mask: [Bool]

    public init(tokens: [Int], mask: [Bool]) {
        self.tokens = tokens
        self.mask = mask
    }

    /// Counted targets: positions t ≥ 1 with mask[t].
    public var targetCount: Int { mask.indices.dropFirst().reduce(0) { $0 + (mask[$1] ? 1 : 0) } }
}

/// Training records and how they become `TrainingExample`s, as LLM-Pruner's recovery stage
/// (alpaca-lora's `finetune.py`) prepares them:
/// - a record with a string `text` (C4-style JSONL): the whole text is the target;
/// - an Alpaca record (`instruction`, optional `input`, `output`): the Alpaca prompt followed
///   by the output, the loss on the output only (`train_on_inputs=False`: the tokens of the
///   prompt alone are masked).
/// Each is tokenized with the tokenizer's special tokens, cut to `seqLen` tokens, and ends with
/// EOS when it was shorter than the cut-off and did not already.
public enum TrainingData {
    /// The Alpaca prompt with an input (alpaca-lora's template, which LLM-Pruner uses).
    public static func alpacaPrompt(instruction: String, input: String?) -> String {
        if let input, !input.isEmpty {
            return "Below is an instruction that describes a task, paired with an input that provides further context. "
                + "Write a response that appropriately completes the request.\n\n"
                + "### Instruction:\n\(instruction)\n\n### Input:\n\(input)\n\n### Response:\n"
        }
        return "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
            + "### Instruction:\n\(instruction)\n\n### Response:\n"
    }

    /// One record of a training file.
    public enum Record: Equatable, Sendable {
        case text(String)
        case alpaca(instruction: String, input: String?, output: String)

        var isText: Bool { if case .text = self { return true } else { return false } }
    }

    /// The records of `file`: JSONL (one object per line, blank lines skipped) or one JSON array
    /// of objects (alpaca_data.json). All records must be of one kind.
    public static func records(file: URL) throws -> [Record] {
        let data = try RegularFile.contents(file)
        guard let text = String(data: data, encoding: .utf8) else { throw InputError(file.path, "is not UTF-8 text") }
        var objects: [(where: String, object: Any)] = []
        if text.first(where: { !$0.isWhitespace }) == "[" {
            guard let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any] else {
                throw InputError(file.path, "starts with '[' but is not a JSON array")
            }
            objects = array.enumerated().map { ("record \($0.offset + 1)", $0.element) }
        } else {
            var lineNo = 0
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                lineNo += 1
                if line.allSatisfy(\.isWhitespace) { continue }
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed]) else {
                    throw InputError(file.path, "line \(lineNo) is not valid JSON")
                }
                objects.append(("line \(lineNo)", o))
            }
        }
        var out: [Record] = []
        for (place, o) in objects {
            let r = try record(o, file: file, place: place)
            if let first = out.first, first.isText != r.isText {
                throw InputError(file.path, "\(place) is \(r.isText ? "a text" : "an Alpaca") record but the first record is \(first.isText ? "a text" : "an Alpaca") one; use one kind per file")
            }
            out.append(r)
        }
        guard !out.isEmpty else { throw InputError(file.path, "holds no training records") }
        return out
    }

    private static func record(_ o: Any, file: URL, place: String) throws -> Record {
        guard let obj = o as? [String: Any] else { throw InputError(file.path, "\(place) is not a JSON object") }
        if obj["instruction"] != nil || obj["output"] != nil {
            guard let instruction = obj["instruction"] as? String, let output = obj["output"] as? String else {
                throw InputError(file.path, "\(place): an Alpaca record needs string fields 'instruction' and 'output'")
            }
            var input: String?
            switch obj["input"] {
            case nil, is NSNull: input = nil
            case let s as String: input = s
            default: throw InputError(file.path, "\(place): field 'input' is not a string")
            }
            return .alpaca(instruction: instruction, input: input, output: output)
        }
        guard let t = obj["text"] as? String else {
            throw InputError(file.path, "\(place) has neither a string field 'text' nor Alpaca fields 'instruction' and 'output'")
        }
        return .text(t)
    }

    /// `ids` cut to `seqLen`, with EOS appended when shorter and not already ending in it.
    static func cut(_ ids: [Int], seqLen: Int, eos: Int?, addEos: Bool) -> [Int] {
        var out = Array(ids.prefix(seqLen))
        if addEos, let eos, out.last != eos, out.count < seqLen { out.append(eos) }
        return out
    }

    /// The example of one record; nil when it has no target (a text of one token, or an Alpaca
    /// prompt that fills the whole cut-off).
    public static func example(_ r: Record, tokenizer: Tokenizer, seqLen: Int) throws -> TrainingExample? {
        let eos = tokenizer.eosTokenId
        let tokens: [Int], promptLength: Int
        switch r {
        case .text(let t):
            tokens = cut(try tokenizer.encode(t, addSpecialTokens: true), seqLen: seqLen, eos: eos, addEos: true)
            promptLength = 0
        case .alpaca(let instruction, let input, let output):
            let prompt = alpacaPrompt(instruction: instruction, input: input)
            tokens = cut(try tokenizer.encode(prompt + output, addSpecialTokens: true), seqLen: seqLen, eos: eos, addEos: true)
            promptLength = cut(try tokenizer.encode(prompt, addSpecialTokens: true), seqLen: seqLen, eos: eos, addEos: false).count
        }
        let e = TrainingExample(tokens: tokens, mask: tokens.indices.map { $0 >= promptLength })
        return e.targetCount > 0 ? e : nil
    }

    /// Every example of `file` in file order (records without a target left out).
    public static func examples(file: URL, tokenizer: Tokenizer, seqLen: Int) throws -> [TrainingExample] {
        guard seqLen >= 2 else { throw InputError("--seq-len", "\(seqLen) must be at least 2") }
        var out: [TrainingExample] = []
        for r in try records(file: file) {
            if let e = try example(r, tokenizer: tokenizer, seqLen: seqLen) { out.append(e) }
        }
        guard !out.isEmpty else { throw InputError(file.path, "no record has a token to train on") }
        return out
    }
}
