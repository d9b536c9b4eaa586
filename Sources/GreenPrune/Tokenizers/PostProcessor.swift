/// A tokenizer.json `post_processor`: the special tokens wrapped around one encoded sequence
/// (BERT's `[CLS] … [SEP]`, Llama's BOS). Only used with `addSpecialTokens`.
public protocol PostProcessor {
    /// The ids before and after a single sequence.
    var prefix: [Int] { get }
    var suffix: [Int] { get }
}

/// The post-processor `"type"` strings GreenPrune implements.
public enum PostProcessorType: String, CaseIterable {
    case template = "TemplateProcessing"
    case bert = "BertProcessing"
    case roberta = "RobertaProcessing"
    case byteLevel = "ByteLevel"
    case sequence = "Sequence"
}

/// A fixed prefix and suffix around the sequence.
public struct WrapProcessor: PostProcessor {
    public var prefix: [Int]
    public var suffix: [Int]
    public init(prefix: [Int], suffix: [Int]) {
        self.prefix = prefix
        self.suffix = suffix
    }
}

/// Builds the post-processor described by `node` (nil for JSON null); unknown types throw.
public func makePostProcessor(_ node: JSONField?) throws -> PostProcessor? {
    guard let node, !node.isNull else { return nil }
    let name = try node.type()
    guard let type = PostProcessorType(rawValue: name) else { throw unsupported("post_processor", name, node) }
    switch type {
    case .template:
        // "single": [{"SpecialToken": {"id": "[CLS]"}}, {"Sequence": {"id": "A"}}, …];
        // "special_tokens": {"[CLS]": {"ids": [101], …}}.
        let specials = try node.field("special_tokens")
        var pre = [Int](), post = [Int]()
        var seenSequence = false
        for item in try node.required("single").array() {
            if try item.field("Sequence") != nil {
                guard !seenSequence else { throw item.error("repeats the sequence") }
                seenSequence = true
            } else if let sp = try item.field("SpecialToken") {
                let name = try sp.string("id")
                guard let entry = try specials?.field(name) else {
                    throw sp.error("names '\(name)', which special_tokens does not define")
                }
                let ids = try entry.required("ids").array().map { try $0.int() }
                if seenSequence { post += ids } else { pre += ids }
            } else {
                throw item.error("must be a Sequence or a SpecialToken")
            }
        }
        guard seenSequence else { throw node.error("single template has no Sequence") }
        return WrapProcessor(prefix: pre, suffix: post)
    case .bert, .roberta:
        // "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]
        func id(_ key: String) throws -> Int {
            let pair = try node.required(key).array()
            guard pair.count == 2 else { throw node.error("\(key) must be [token, id]") }
            return try pair[1].int()
        }
        return WrapProcessor(prefix: [try id("cls")], suffix: [try id("sep")])
    case .byteLevel:
        return WrapProcessor(prefix: [], suffix: [])
    case .sequence:
        var pre = [Int](), post = [Int]()
        for p in try node.required("processors").array() {
            if let proc = try makePostProcessor(p) {
                pre = proc.prefix + pre
                post += proc.suffix
            }
        }
        return WrapProcessor(prefix: pre, suffix: post)
    }
}
