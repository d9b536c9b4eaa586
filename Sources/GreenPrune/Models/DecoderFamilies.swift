/// The one list of decoder families: config.json's `model_type` picks one here, and
/// `ModelConfig.family`, `ModelLoader.load` and `ModelDirectoryCheck` (hence every command's load
/// path) read it. Adding a family is its `DecoderModel` file and one line below.
public enum DecoderFamilies {
    /// Every decoder family, in the order `model_type` errors list them.
    public static let all: [any DecoderModel.Type] = [
        LlamaModel.self,
        GPT2Model.self,
    ]

    /// The family that runs `model_type`, nil for an encoder or an unknown type.
    public static func family(modelType: String) -> (any DecoderModel.Type)? {
        all.first { $0.modelTypes.contains(modelType) }
    }

    /// The family named `family` (`DecoderModel.family`), nil for an encoder.
    public static func family(named family: ModelFamily) -> (any DecoderModel.Type)? {
        all.first { $0.family == family }
    }
}
