/// What every tokenizer built from a tokenizer.json offers the rest of GreenPrune.
public protocol Tokenizer: AnyObject {
    /// Token ids of `text`. With `addSpecialTokens`, the post-processor's tokens are added
    /// (BERT's [CLS]/[SEP], a BOS where the tokenizer adds one by default); never padding or
    /// truncation, whatever tokenizer.json's `padding`/`truncation` say.
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int]
    /// The text of `ids`; special tokens dropped when `skipSpecialTokens`.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    /// The string of one id (nil if out of range).
    func token(for id: Int) -> String?
    /// The id of a token string (nil if unknown).
    func id(for token: String) -> Int?
    /// Vocabulary size including added tokens.
    var vocabularySize: Int { get }
    /// Beginning/end-of-sequence ids where the model has them.
    var bosTokenId: Int? { get }
    var eosTokenId: Int? { get }
    /// Whether `encode(_, addSpecialTokens: true)` starts with BOS (lm-eval's `add_bos_token`).
    var addsBosByDefault: Bool { get }
}
