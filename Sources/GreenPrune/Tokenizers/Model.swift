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
public func makeModel(_ node: JSONNode) throws -> TokenizationModel {
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

/// A model's `vocab` object (token → id) and its inverse.
struct Vocabulary {
    let ids: [String: Int]
    let tokens: [String?]

    init(_ node: JSONNode) throws {
        let obj = try node.required("vocab").object()
        var ids = [String: Int](minimumCapacity: obj.count)
        var maxId = -1
        for (k, v) in obj {
            guard let id = (v as? Int) ?? (v as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }), id >= 0, id < 1 << 24 else {
                throw node.error("vocab entry \(k.debugDescription) must map to an id in 0..<16777216")
            }
            ids[k] = id
            maxId = max(maxId, id)
        }
        var tokens = [String?](repeating: nil, count: maxId + 1)
        for (k, id) in ids { tokens[id] = k }
        self.ids = ids
        self.tokens = tokens
    }

    func token(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }
}

/// A vocabulary without subword rules: whole pieces, else the unknown token.
final class WordLevelModel: TokenizationModel {
    let vocab: Vocabulary
    let unkId: Int?

    init(_ node: JSONNode) throws {
        vocab = try Vocabulary(node)
        if let u = try node.optionalString("unk_token") {
            guard let id = vocab.ids[u] else { throw node.error("unk_token '\(u)' is not in the vocabulary") }
            unkId = id
        } else {
            unkId = nil
        }
    }

    func tokenize(_ piece: [Unicode.Scalar], into ids: inout [Int]) throws {
        if let id = vocab.ids[String(String.UnicodeScalarView(piece))] {
            ids.append(id)
        } else if let u = unkId {
            ids.append(u)
        } else {
            throw TokenizeError.noUnknownToken(String(String.UnicodeScalarView(piece)))
        }
    }

    func token(for id: Int) -> String? { vocab.token(id) }
    func id(for token: String) -> Int? { vocab.ids[token] }
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
