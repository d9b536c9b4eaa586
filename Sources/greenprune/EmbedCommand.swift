import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune embed DIR --text T [--text-file F] [--json] [--no-normalize]`: sentence-transformers
/// embeddings (mean pooling over the non-padding tokens, then L2 normalisation) from a BERT or
/// MPNet encoder.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "L2-normalised mean-pooled sentence embeddings from a BERT or MPNet encoder.",
        discussion: "Prints the embeddings on stdout and, on stderr, how many texts and tokens were embedded and the seconds tokenization and the forwards took, wall and CPU (model loading excluded).")

    @Argument(help: "Model directory of an encoder (config.json, model.safetensors, tokenizer.json).")
    var model: String

    @Option(help: "A text to embed (repeatable).")
    var text: [String] = []

    @Option(help: "A UTF-8 file of texts to embed, one per line (after any --text).")
    var textFile: String?

    @Flag(help: "Print one JSON object per text (JSON lines).")
    var json = false

    @Flag(help: "Print the mean-pooled vectors before the L2 normalisation.")
    var noNormalize = false

    @Option(help: "Token budget of one forward (sequences × longest sequence); the default suits the model.")
    var batchTokens: Int?

    func validate() throws {
        if text.isEmpty && textFile == nil { throw ValidationError("give at least one --text or a --text-file") }
        if let b = batchTokens, b < 1 { throw ValidationError("--batch-tokens must be at least 1, got \(b)") }
    }

    func run() throws {
        var texts = text
        if let textFile { texts += try Self.lines(of: URL(fileURLWithPath: textFile)) }
        let bundle = try ModelLoader.load(URL(fileURLWithPath: model))
        let enc = try bundle.bert()
        if let batchTokens { enc.maxBatchTokens = batchTokens }
        let tok = try bundle.requireTokenizer()
        let start = DispatchTime.now().uptimeNanoseconds, cpuStart = Self.cpuSeconds()
        let ids = try texts.map { try tok.encode($0, addSpecialTokens: true) }
        let vectors = try enc.embed(ids: ids, normalize: !noNormalize)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        FileHandle.standardError.write(Data(String(format: "embed: %ld texts, %ld tokens in %.4f s (CPU %.4f s)\n",
                                                   texts.count, ids.reduce(0) { $0 + $1.count }, seconds,
                                                   Self.cpuSeconds() - cpuStart).utf8))
        let quoter = JSONEncoder()
        quoter.outputFormatting = [.withoutEscapingSlashes]
        for (i, t) in texts.enumerated() {
            if json {
                print(try Self.jsonLine(text: t, ids: ids[i], embedding: vectors[i], quoter: quoter, model: model))
            } else {
                print("text \(i + 1): \(t)")
                print("  \(ids[i].count) tokens, \(vectors[i].count) dimensions:")
                print("  " + vectors[i].map { String(format: "%.6f", $0) }.joined(separator: " "))
            }
        }
    }

    /// One `--json` line: {"dimension", "embedding", "ids", "text"} in that (sorted) order, each
    /// value as the double nearest the float (the shortest digits that read back as it), the
    /// text quoted by `quoter`. Written directly: JSONSerialization's boxing and casts of 384–768
    /// numbers per text took longer than the quantized encoders' products on short sentences.
    static func jsonLine(text: String, ids: [Int], embedding: [Float], quoter: JSONEncoder, model: String) throws -> String {
        guard embedding.allSatisfy(\.isFinite) else { throw InputError(model, "the embedding of '\(text.prefix(40))' is not finite") }
        let quoted = try quoter.encode(text)
        var line = "{\"dimension\":\(embedding.count),\"embedding\":["
        line.reserveCapacity(embedding.count * 22 + ids.count * 6 + quoted.count + 48)
        for (j, v) in embedding.enumerated() {
            if j > 0 { line += "," }
            line += Double(v).description
        }
        line += "],\"ids\":[" + ids.map(String.init).joined(separator: ",") + "],\"text\":"
        line += String(decoding: quoted, as: UTF8.self) + "}"
        return line
    }

    /// User + system CPU seconds of this process so far (every thread).
    static func cpuSeconds() -> Double {
        var u = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u) == 0 else { return 0 }
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }

    /// The texts of a --text-file: every line one text; an empty line is an error rather than
    /// an embedding of nothing that would shift every later row.
    static func lines(of url: URL) throws -> [String] {
        try RegularFile.check(url)
        let lines = try DataFiles.lines(url)
        if let i = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw InputError(url.path, "line \(i + 1) is empty (one text per line)")
        }
        return lines.map(String.init)
    }
}
