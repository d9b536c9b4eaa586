import Foundation

/// What makes a model whose layers differ in width (a pruned one, `Surgery.layerDimsKey` in
/// config.json) load in transformers: a `trust_remote_code` modeling file beside config.json,
/// and config.json's `auto_map` naming its class for `AutoModelForCausalLM`.
///
/// The file subclasses transformers' `LlamaForCausalLM` and rebuilds each layer's attention and
/// MLP from that layer's `num_attention_heads`, `num_key_value_heads` and `intermediate_size`;
/// everything else (norms, rotary embedding, head, generation) is transformers' own. Stock
/// transformers reads the same config.json as a uniform Llama and refuses the smaller tensors.
public enum PerLayerRemoteCode {
    /// The modeling file's name.
    public static let fileName = "modeling_greenprune_llama.py"
    /// The class `auto_map` names.
    public static let className = "GreenPruneLlamaForCausalLM"

    /// The modeling file. It reads `greenprune_layer_dims` (one object per layer) from the config.
    public static let source = """
    # Written by GreenPrune: a Llama whose layers differ in attention heads and MLP width (a pruned
    # model). Load with AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True).
    import copy

    from transformers import LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaMLP


    class \(className)(LlamaForCausalLM):
        def __init__(self, config):
            super().__init__(config)
            # config.json's num_attention_heads / intermediate_size are the widest layer's; each
            # layer's own widths are in greenprune_layer_dims.
            for i, (layer, dims) in enumerate(zip(self.model.layers, config.\(layerDimsKey))):
                c = copy.copy(config)
                c.num_attention_heads = dims["num_attention_heads"]
                c.num_key_value_heads = dims["num_key_value_heads"]
                c.intermediate_size = dims["intermediate_size"]
                layer.self_attn = LlamaAttention(c, layer_idx=i)
                layer.mlp = LlamaMLP(c)

    """

    /// The config.json key of the per-layer widths (`Surgery.layerDimsKey`).
    static var layerDimsKey: String { Surgery.layerDimsKey }

    /// For a config.json with per-layer widths: the config with `auto_map` added and the files
    /// to write beside it (name → bytes). Any other config comes back as it is, with no files
    /// (and without a stale `auto_map` entry of ours).
    public static func prepare(_ config: ConfigJSON) throws -> (config: ConfigJSON, files: [String: Data]) {
        var c = config
        let module = String(fileName.dropLast(".py".count))
        let perLayer = config.contains(layerDimsKey)
        var autoMap = try config.value([String: JSONValue].self, "auto_map") ?? [:]
        if perLayer {
            autoMap["AutoModelForCausalLM"] = .string("\(module).\(className)")
        } else if case .string(let s)? = autoMap["AutoModelForCausalLM"], s.hasPrefix(module + ".") {
            autoMap["AutoModelForCausalLM"] = nil
        } else {
            return (config, [:])
        }
        try c.set("auto_map", autoMap.isEmpty ? nil : autoMap)
        return (c, perLayer ? [fileName: Data(source.utf8)] : [:])
    }
}
