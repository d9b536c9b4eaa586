import Foundation

/// A tokenizer assembled from a tokenizer.json pipeline, encoding as Hugging Face `tokenizers`
/// does: added tokens cut out of the raw text, normalizer, added tokens cut out of the
/// normalized text, pre-tokenizer, model per piece, then (with `addSpecialTokens`) the
/// post-processor's prefix and suffix. Padding and truncation are never applied.
///
/// Safe to share between threads (the BPE word cache takes a lock).
public final class PreTrainedTokenizer: Tokenizer {
    public let normalizer: Normalizer?
    public let preTokenizer: PreTokenizer?
    public let model: TokenizationModel
    public let decoder: TokenDecoder?
    public let addedTokens: [AddedToken]
    /// Ids put before / after the text by `encode(_, addSpecialTokens: true)`.
    public let specialPrefix: [Int]
    public let specialSuffix: [Int]
    public let bosTokenId: Int?
    public let eosTokenId: Int?

    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let addedById: [Int: AddedToken]
    private let addedByContent: [ScalarKey: Int]

    public init(normalizer: Normalizer?, preTokenizer: PreTokenizer?, model: TokenizationModel,
                postProcessor: PostProcessor?, decoder: TokenDecoder?, addedTokens: [AddedToken],
                bosTokenId: Int?, eosTokenId: Int?, addBos: Bool?, addEos: Bool?) {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.decoder = decoder
        self.addedTokens = addedTokens
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized }, normalizer: nil)
        normalizedMatcher = AddedTokenMatcher(addedTokens.filter { $0.normalized }, normalizer: normalizer)
        var byId = [Int: AddedToken](), byContent = [ScalarKey: Int]()
        for t in addedTokens {
            byId[t.id] = t
            byContent[Array(t.content.unicodeScalars)] = t.id
        }
        addedById = byId
        addedByContent = byContent
        // tokenizer_config.json's add_bos_token / add_eos_token, where given, override the
        // post-processor (as transformers' Llama tokenizers rebuild their template from them).
        var pre = postProcessor?.prefix ?? [], post = postProcessor?.suffix ?? []
        if let bos = bosTokenId, let add = addBos {
            if add && pre.first != bos { pre.insert(bos, at: 0) }
            if !add && pre.first == bos { pre.removeFirst() }
        }
        if let eos = eosTokenId, let add = addEos {
            if add && post.last != eos { post.append(eos) }
            if !add && post.last == eos { post.removeLast() }
        }
        specialPrefix = pre
        specialSuffix = post
    }

    public var addsBosByDefault: Bool { bosTokenId != nil && specialPrefix.first == bosTokenId }

    public var vocabularySize: Int {
        max(model.vocabularySize, (addedTokens.map { $0.id }.max() ?? -1) + 1)
    }

    /// Ids of the added tokens marked special (what `skipSpecialTokens` drops).
    public var specialTokenIds: Set<Int> { Set(addedTokens.filter { $0.special }.map { $0.id }) }

    public func token(for id: Int) -> String? { addedById[id]?.content ?? model.token(for: id) }

    public func id(for token: String) -> Int? { addedByContent[Array(token.unicodeScalars)] ?? model.id(for: token) }

    public func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] {
        let s = Array(text.unicodeScalars)
        var ids = [Int]()
        ids.reserveCapacity(s.count / 3 + 8)
        if addSpecialTokens { ids += specialPrefix }
        for seg in rawMatcher.split(s) {
            switch seg {
            case .token(let id): ids.append(id)
            case .text(let r):
                var text = Array(s[r])
                if let n = normalizer { text = n.normalize(text) }
                for seg2 in normalizedMatcher.split(text) {
                    switch seg2 {
                    case .token(let id): ids.append(id)
                    case .text(let r2):
                        let piece = TextPiece(Array(text[r2]), atOrigin: r.lowerBound == 0 && r2.lowerBound == 0)
                        if let p = preTokenizer {
                            try p.preTokenize(piece) { try model.tokenize($0.scalars, into: &ids) }
                        } else {
                            try model.tokenize(piece.scalars, into: &ids)
                        }
                    }
                }
            }
        }
        if addSpecialTokens { ids += specialSuffix }
        return ids
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var tokens = [String]()
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let a = addedById[id] {
                if !(skipSpecialTokens && a.special) { tokens.append(a.content) }
            } else if let t = model.token(for: id) {
                tokens.append(t)
            }
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }
}
