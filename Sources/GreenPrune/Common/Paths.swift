import Foundation

/// Where GreenPrune finds its cache, its default models and the evaluation data.
public enum Paths {
    /// `$GREENPRUNE_HOME`, else `~/.cache/greenprune`: downloaded packages and imported models.
    public static var home: URL {
        if let h = GreenPruneEnvironment.process.home { return URL(fileURLWithPath: h) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/greenprune")
    }

    /// The imported SmolLM2-135M-Instruct directory (made by `scripts/fetch-models.sh`).
    public static var defaultDecoder: URL { home.appendingPathComponent("models/smollm2-135m") }
    /// The all-MiniLM-L6-v2 directory unpacked from its PyPI package.
    public static var defaultEncoder: URL { home.appendingPathComponent("models/all-minilm-l6-v2") }
    /// The all-mpnet-base-v2 directory joined from its five PyPI packages
    /// (`scripts/fetch-models.sh mpnet`).
    public static var mpnetEncoder: URL { home.appendingPathComponent("models/all-mpnet-base-v2") }

    /// Evaluation data: an explicit flag, else `$GREENPRUNE_DATA`, else `../shared/data`.
    public static func dataDirectory(_ flag: String? = nil) -> URL {
        if let f = flag, !f.isEmpty { return URL(fileURLWithPath: f) }
        if let d = GreenPruneEnvironment.process.data { return URL(fileURLWithPath: d) }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            .appendingPathComponent("../shared/data").standardizedFileURL
    }

    /// Reference outputs: `$GREENPRUNE_REFERENCE`, else `../shared/reference`.
    public static func referenceDirectory() -> URL {
        if let d = GreenPruneEnvironment.process.reference { return URL(fileURLWithPath: d) }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            .appendingPathComponent("../shared/reference").standardizedFileURL
    }
}
