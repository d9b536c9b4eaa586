import Foundation

/// A tokenizer.json `model`: turns one pre-tokenized piece into token ids.
public protocol TokenizationModel: AnyObject {
    /// Appends the ids of `piece` to `ids`.
    func tokenize(_ piece: [Unicode.Scalar], into ids: inout [Int]) throws
    /// The string of a model-vocabulary id.
    func token(for id: Int) -> String?
    /// The id of a model-vocabulary string.
    func id(for token: String) -> Int?
    /// One past the largest id in the model's vocabulary.
    var vocabularySize: Int { get }
}

/// The model `"type"` strings GreenPrune implements.
public enum ModelType: String, CaseIterable {
    case bpe = "BPE"
    case wordPiece = "WordPiece"
    case wordLevel = "WordLevel"
}

/// Builds the model described by `node`. Old files without `"type"` are recognised by their
/// fields (merges → BPE, a subword prefix without merges → WordPiece).
public func makeModel(_ node: JSONField) throws -> TokenizationModel {
    let name: String
    if let t = try node.optionalString("type") {
        name = t
    } else if try node.field("merges") != nil {
        name = ModelType.bpe.rawValue
    } else if try node.field("continuing_subword_prefix") != nil {
        name = ModelType.wordPiece.rawValue
    } else {
        throw node.error("has no 'type' and is not recognisably BPE or WordPiece")
    }
    guard let type = ModelType(rawValue: name) else { throw unsupported("model", name, node) }
    switch type {
    case .bpe: return try BPEModel(node)
    case .wordPiece: return try WordPieceModel(node)
    case .wordLevel: return try WordLevelModel(node)
    }
}

/// A scalar-exact string key (Swift `String` equality would merge canonically equivalent
/// tokens such as "é" and "e\u{301}", which are different tokens to Hugging Face).
typealias ScalarKey = [Unicode.Scalar]

/// A model's `vocab` object (token → id) and its inverse.
struct Vocabulary {
    /// Token scalars → id (one value per key), all tokens in one pool.
    let ids: ScalarSequenceMap
    let tokens: [String?]

    init(_ node: JSONField) throws {
        let members = try node.required("vocab").members()
        var ids = ScalarSequenceMap(minimumCapacity: members.count)
        var maxId = -1
        for (k, v) in members {
            guard case .number(let d) = v, let id = Int(exactly: d), id >= 0, id < 1 << 24 else {
                throw node.error("vocab entry \(k.debugDescription) must map to an id in 0..<16777216")
            }
            ids.set(k.unicodeScalars, CollectionOfOne(Int32(id)))
            maxId = max(maxId, id)
        }
        // Real vocabularies are dense; a few huge ids must not make us allocate millions of slots.
        guard maxId < 2 * ids.count + 65_536 else {
            throw node.error("vocab ids are sparse (largest \(maxId) for \(ids.count) tokens)")
        }
        var tokens = [String?](repeating: nil, count: maxId + 1)
        ids.forEach { k, v in
            tokens[Int(v[v.startIndex])] = String(String.UnicodeScalarView(k.compactMap(Unicode.Scalar.init)))
        }
        self.ids = ids
        self.tokens = tokens
    }

    func token(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }
    func id(_ token: String) -> Int? { ids.id(token.unicodeScalars) }
    func id<K: Collection>(_ scalars: K) -> Int? where K.Element == Unicode.Scalar { ids.id(scalars) }
}

/// A vocabulary without subword rules: whole pieces, else the unknown token.
final class WordLevelModel: TokenizationModel {
    let vocab: Vocabulary
    let unkId: Int?

    init(_ node: JSONField) throws {
        vocab = try Vocabulary(node)
        if let u = try node.optionalString("unk_token") {
            guard let id = vocab.id(u) else { throw node.error("unk_token '\(u)' is not in the vocabulary") }
            unkId = id
        } else {
            unkId = nil
        }
    }

    func tokenize(_ piece: [Unicode.Scalar], into ids: inout [Int]) throws {
        if let id = vocab.id(piece) {
            ids.append(id)
        } else if let u = unkId {
            ids.append(u)
        } else {
            throw TokenizeError.noUnknownToken(String(String.UnicodeScalarView(piece)))
        }
    }

    func token(for id: Int) -> String? { vocab.token(id) }
    func id(for token: String) -> Int? { vocab.id(token) }
    var vocabularySize: Int { vocab.tokens.count }
}

/// Encoding failures that depend on the text, not on the tokenizer file.
public enum TokenizeError: Error, LocalizedError, CustomStringConvertible {
    case noUnknownToken(String)

    public var description: String {
        switch self {
        case .noUnknownToken(let w):
            return "cannot tokenize \(w.debugDescription): not in the vocabulary and the tokenizer has no unk_token"
        }
    }
    public var errorDescription: String? { description }
}
