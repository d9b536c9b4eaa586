import CKernels
import Foundation

/// Reads a Hugging Face tokenizer (tokenizer.json plus tokenizer_config.json) into a `Tokenizer`.
public enum TokenizerLoader {
    /// The tokenizer of a model directory: `tokenizer.json`, and `tokenizer_config.json` /
    /// `generation_config.json` when present (BOS/EOS tokens, `add_bos_token`).
    public static func load(directory: URL) throws -> Tokenizer {
        let json = directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: json.path) else {
            throw InputError(json.path, "no tokenizer.json in the model directory")
        }
        let config = directory.appendingPathComponent("tokenizer_config.json")
        let generation = directory.appendingPathComponent("generation_config.json")
        let tokenizer = try load(tokenizerJSON: json,
                                 config: FileManager.default.fileExists(atPath: config.path) ? config : nil,
                                 generationConfig: FileManager.default.fileExists(atPath: generation.path) ? generation : nil)
        gpk_release_free_heap()  // tokenizer.json's parse tree (about 16 MB for a 49k vocabulary) is gone
        return tokenizer
    }

    /// A tokenizer from explicit files; `config` (tokenizer_config.json) is optional.
    public static func load(tokenizerJSON: URL, config: URL?) throws -> Tokenizer {
        try load(tokenizerJSON: tokenizerJSON, config: config, generationConfig: nil)
    }

    /// As `load(tokenizerJSON:config:)`, returning the concrete type (its pipeline stages and
    /// added tokens are visible) and reading generation_config.json for BOS/EOS fallbacks.
    public static func load(tokenizerJSON: URL, config: URL?, generationConfig: URL?) throws -> PreTrainedTokenizer {
        let file = tokenizerJSON.path
        let root = try JSONField.parse(try read(tokenizerJSON), file: file)
        _ = try root.members()
        let model = try makeModel(try root.required("model"))
        let normalizer = try makeNormalizer(try root.field("normalizer"))
        let preTokenizer = try makePreTokenizer(try root.field("pre_tokenizer"))
        let postProcessor = try makePostProcessor(try root.field("post_processor"))
        let decoder = try makeDecoder(try root.field("decoder"))
        let added = try root.field("added_tokens")?.array().map { try AddedToken($0) } ?? []
        // `padding` and `truncation` are deliberately ignored: encode never pads or truncates.

        var bosName: String?, eosName: String?, addBos: Bool?, addEos: Bool?
        if let config {
            let c = try JSONField.parse(try read(config), file: config.path)
            _ = try c.members()
            bosName = try tokenName(c.field("bos_token"))
            eosName = try tokenName(c.field("eos_token"))
            addBos = try c.field("add_bos_token")?.bool()
            addEos = try c.field("add_eos_token")?.bool()
        }
        var genBos: Int?, genEos: Int?
        if let generationConfig {
            let g = try JSONField.parse(try read(generationConfig), file: generationConfig.path)
            genBos = try firstInt(g.field("bos_token_id"))
            genEos = try firstInt(g.field("eos_token_id"))
        }
        func resolve(_ name: String?) -> Int? {
            guard let name else { return nil }
            return added.first(where: { $0.content == name })?.id ?? model.id(for: name)
        }
        return PreTrainedTokenizer(normalizer: normalizer, preTokenizer: preTokenizer, model: model,
                                   postProcessor: postProcessor, decoder: decoder, addedTokens: added,
                                   bosTokenId: resolve(bosName) ?? genBos, eosTokenId: resolve(eosName) ?? genEos,
                                   addBos: addBos, addEos: addEos)
    }

    private static func read(_ url: URL) throws -> Data {
        try RegularFile.check(url)
        do {
            return try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw InputError(url.path, "cannot read: \(error.localizedDescription)")
        }
    }

    /// `"bos_token": "<s>"` or `{"content": "<s>", …}`.
    private static func tokenName(_ node: JSONField?) throws -> String? {
        guard let node else { return nil }
        if case .string(let s) = node.value { return s }
        return try node.string("content")
    }

    /// An id or a list of ids (the first is taken).
    private static func firstInt(_ node: JSONField?) throws -> Int? {
        guard let node else { return nil }
        if case .array = node.value { return try node.array().first?.int() }
        return try node.int()
    }
}
