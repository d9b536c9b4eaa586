/// BERT's WordPiece: greedy longest-match-first from the left, continuation pieces carrying
/// the `##` prefix; a word with an unmatchable remainder, or longer than
/// `max_input_chars_per_word` scalars, becomes the single unknown token.
final class WordPieceModel: TokenizationModel {
    let vocab: Vocabulary
    let unkId: Int
    let prefix: [Unicode.Scalar]
    let maxChars: Int

    init(_ node: JSONField) throws {
        vocab = try Vocabulary(node)
        let unk = try node.optionalString("unk_token") ?? "[UNK]"
        guard let u = vocab.id(unk) else { throw node.error("unk_token '\(unk)' is not in the vocabulary") }
        unkId = u
        prefix = Array((try node.optionalString("continuing_subword_prefix") ?? "##").unicodeScalars)
        maxChars = try node.optionalInt("max_input_chars_per_word") ?? 100
    }

    func token(for id: Int) -> String? { vocab.token(id) }
    func id(for token: String) -> Int? { vocab.id(token) }
    var vocabularySize: Int { vocab.tokens.count }

    func tokenize(_ piece: [Unicode.Scalar], into ids: inout [Int]) throws {
        if piece.isEmpty { return }
        if piece.count > maxChars { ids.append(unkId); return }
        var out = [Int]()
        var start = 0
        while start < piece.count {
            var end = piece.count
            var found: Int?
            while start < end {
                var s = ScalarKey()
                s.reserveCapacity(prefix.count + end - start)
                if start > 0 { s.append(contentsOf: prefix) }
                s.append(contentsOf: piece[start..<end])
                if let id = vocab.id(s) { found = id; break }
                end -= 1
            }
            guard let id = found else { ids.append(unkId); return }
            out.append(id)
            start = end
        }
        ids.append(contentsOf: out)
    }
}
