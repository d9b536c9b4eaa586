import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune tokenize DIR --text T | --file F`: token ids as the model's tokenizer.json gives them.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize text with a model directory's tokenizer.json (ids to stdout, timing to stderr).")

    @Argument(help: "Model directory holding tokenizer.json (and tokenizer_config.json).")
    var directory: String

    @Option(help: "Text to tokenize (repeatable).")
    var text: [String] = []

    @Option(help: "A UTF-8 file tokenized as one text.")
    var file: String?

    @Flag(help: "Leave out the post-processor's special tokens (BOS, [CLS]/[SEP]).")
    var noSpecialTokens = false

    @Flag(help: "Print one JSON object per text: ids, tokens, count, decoded.")
    var json = false

    @Flag(help: "Print only the number of tokens per text.")
    var count = false

    func validate() throws {
        if text.isEmpty == (file == nil) { throw ValidationError("give either --text or --file") }
    }

    func run() throws {
        let tokenizer = try TokenizerLoader.load(directory: URL(fileURLWithPath: directory))
        var texts = text
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw InputError(file, "cannot read")
            }
            texts = [String(decoding: data, as: UTF8.self)]
        }
        for t in texts {
            let start = DispatchTime.now().uptimeNanoseconds
            let ids = try tokenizer.encode(t, addSpecialTokens: !noSpecialTokens)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let bytes = t.utf8.count
            FileHandle.standardError.write(Data(String(
                format: "%ld bytes -> %ld tokens in %.3f s (%.2f MB/s)\n", bytes, ids.count, seconds,
                Double(bytes) / max(seconds, 1e-9) / 1e6).utf8))
            if count {
                print(ids.count)
            } else if json {
                let obj: [String: Any] = [
                    "ids": ids, "count": ids.count,
                    "tokens": ids.map { tokenizer.token(for: $0) ?? "" },
                    "decoded": tokenizer.decode(ids, skipSpecialTokens: false),
                ]
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(ids.map(String.init).joined(separator: " "))
            }
        }
    }
}
