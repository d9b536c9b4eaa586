import Foundation

/// A sentence-transformers directory's pipeline (modules.json and its Pooling module's
/// config.json) checked against what `BertModel.embed` computes: the transformer, mean pooling
/// over the non-padding tokens, L2 normalisation. A directory without modules.json is a plain
/// Hugging Face encoder and passes; a pipeline that pools otherwise (CLS, max), adds a Dense
/// layer, or does not normalise is refused rather than embedded differently from
/// sentence-transformers.
public enum SentenceTransformersModules {
    static let transformer = "sentence_transformers.models.Transformer"
    static let pooling = "sentence_transformers.models.Pooling"
    static let normalize = "sentence_transformers.models.Normalize"
    /// The Pooling config's `pooling_mode_*` flags other than mean, all of which must be off.
    static let otherPoolingModes = ["pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                    "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"]

    /// Throws one line naming the file when `directory`'s pipeline is not transformer → mean
    /// pooling → normalise.
    public static func check(_ directory: URL) throws {
        let url = directory.appendingPathComponent("modules.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        let data = try RegularFile.contents(url)
        guard let modules = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] else {
            throw InputError(url.path, "not a JSON list of modules")
        }
        let types = modules.map { $0["type"] as? String ?? "" }
        guard types == [transformer, pooling, normalize] else {
            throw InputError(url.path, "the pipeline is \(types.map { $0.split(separator: ".").last.map(String.init) ?? $0 }); embeddings are computed as Transformer, Pooling (mean), Normalize")
        }
        let path = modules[1]["path"] as? String ?? ""
        guard !path.isEmpty, !path.contains(".."), !path.hasPrefix("/") else { throw InputError(url.path, "the Pooling module's path '\(path)' is not a folder inside the model directory") }
        let configURL = directory.appendingPathComponent(path).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw InputError(configURL.path, "missing: modules.json names a Pooling module here") }
        let configData = try RegularFile.contents(configURL)
        guard let config = (try? JSONSerialization.jsonObject(with: configData)) as? [String: Any] else {
            throw InputError(configURL.path, "not a JSON object")
        }
        let on = otherPoolingModes.filter { config[$0] as? Bool == true }
        guard config["pooling_mode_mean_tokens"] as? Bool == true, on.isEmpty else {
            throw InputError(configURL.path, "pooling is \(on.isEmpty ? "not mean" : on.joined(separator: ", ")); only pooling_mode_mean_tokens is supported")
        }
    }
}
