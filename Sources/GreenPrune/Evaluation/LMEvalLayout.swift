import Foundation

/// What lm-eval 0.4 writes beyond the metrics, filled in the same way where GreenPrune can know
/// the value: the per-sample hashes and fields (lm-eval `evaluator.py`), the per-task hash and
/// the model name (`loggers/evaluation_tracker.py`), the task config's defaults (`config/task.py`
/// `TaskConfig.to_dict`), the tokenizer fields (`loggers/utils.py` `add_tokenizer_info`).
public enum LMEvalLayout {
    /// The lm-eval release whose results.json and samples layout GreenPrune follows; written as
    /// `lm_eval_version` (GreenPrune does not run lm-eval; its own version is
    /// `greenprune.version`).
    public static let version = "0.4.13"

    /// lm-eval's `hash_string`: the SHA-256 hex digest of the UTF-8 text.
    public static func hash(_ text: String) -> String { SHA256.hex(text) }

    /// `doc_hash`: the document as `json.dumps(doc, indent=2, ensure_ascii=False)` writes it (keys
    /// in the order the sample line stores them: sorted).
    public static func documentHash(_ doc: JSONValue) -> String { hash(PythonJSON.dumps(doc, indent: 2)) }

    /// `task_hashes.<task>`: the hash of every sample's doc, prompt and target hashes concatenated
    /// in document order (lm-eval computes it only when samples are logged; GreenPrune always has them).
    public static func taskHash(_ samples: [[String: Any]]) -> String {
        hash(samples.map { s in ["doc_hash", "prompt_hash", "target_hash"].map { s[$0] as? String ?? "" }.joined() }.joined())
    }

    /// lm-eval's `sanitize_model_name`: each run of `"<>:/|\?*[]` becomes `__`.
    public static func sanitizedModelName(_ name: String) -> String {
        let special = Set("\"<>:/|\\?*[]")
        var out = "", inRun = false
        for c in name {
            if special.contains(c) {
                if !inRun { out += "__" }
                inRun = true
            } else {
                out.append(c)
                inRun = false
            }
        }
        return out
    }

    /// A sample record with lm-eval's remaining keys added: `filter` (`none`, GreenPrune's only
    /// filter), `metrics` (the task's metrics the record holds, in the task's order),
    /// `doc_hash`, and `prompt_hash` (of the first request's first argument, where the record has
    /// requests) and `target_hash` (of the target as text, where it has one).
    public static func completed(_ sample: [String: Any], metrics: [MetricSpec]) -> [String: Any] {
        var s = sample
        s["filter"] = "none"
        s["metrics"] = metrics.map(\.name).filter { sample[$0] != nil }
        s["doc_hash"] = documentHash(sample["doc"].flatMap { JSONValue($0) } ?? .object([:]))
        if let args = sample["arguments"] as? [String: Any], let first = args["gen_args_0"] as? [String: Any],
           let prompt = first["arg_0"] as? String {
            s["prompt_hash"] = hash(prompt)
        }
        if let t = sample["target"] { s["target_hash"] = hash(text(t)) }
        return s
    }

    /// Python's `str()` of a JSON scalar, as lm-eval writes `target`.
    static func text(_ v: Any) -> String {
        switch v {
        case let s as String: return s
        case let d as Double: return PythonJSON.float(d)
        case let i as Int: return String(i)
        case let b as Bool: return b ? "True" : "False"
        default: return "\(v)"
        }
    }

    /// `configs.<task>` with the keys lm-eval's `TaskConfig.to_dict()` always writes added where
    /// the task did not set them (its defaults: no description, one-space target delimiter,
    /// blank-line few-shot delimiter, one repeat, no decontamination, the default few-shot
    /// sampler), so the key set is lm-eval's.
    public static func taskConfig(_ c: [String: Any]) -> [String: Any] {
        var out = c
        let defaults: [String: Any] = [
            "description": "", "target_delimiter": " ", "fewshot_delimiter": "\n\n", "num_fewshot": 0,
            "repeats": 1, "should_decontaminate": false, "unsafe_code": false,
        ]
        for (k, v) in defaults where out[k] == nil { out[k] = v }
        if out["fewshot_config"] == nil {
            // lm-eval builds it from the task's own fields; unset ones stay null.
            var f: [String: Any] = ["sampler": "default"]
            for k in ["split", "process_docs", "fewshot_indices", "samples", "gen_prefix"] { f[k] = NSNull() }
            for k in ["doc_to_text", "doc_to_choice", "doc_to_target", "fewshot_delimiter", "target_delimiter"] {
                f[k] = out[k] ?? NSNull()
            }
            out["fewshot_config"] = f
        }
        return out
    }
}

/// The tokenizer fields of lm-eval's results.json: `[token, "id"]` pairs (`"None"` for a missing
/// id, as Python's `str(None)`), and the end-of-text id.
public struct TokenizerFacts: Equatable {
    public var pad: [String?]
    public var eos: [String?]
    public var bos: [String?]
    public var eotTokenID: Int?

    /// From the model's tokenizer. GreenPrune never pads; the pad token is the one lm-eval's
    /// Hugging Face model falls back to when a tokenizer has none, the end-of-sequence token.
    public init(_ t: Tokenizer) {
        func pair(_ id: Int?) -> [String?] { [id.flatMap { t.token(for: $0) }, id.map(String.init) ?? "None"] }
        eos = pair(t.eosTokenId)
        bos = pair(t.bosTokenId)
        pad = eos
        eotTokenID = t.eosTokenId
    }

    public init(pad: [String?], eos: [String?], bos: [String?], eotTokenID: Int?) {
        self.pad = pad
        self.eos = eos
        self.bos = bos
        self.eotTokenID = eotTokenID
    }
}
