import Foundation

/// LoRA adapters in Hugging Face PEFT's saved layout, which `PeftModel.from_pretrained` loads onto
/// the unmerged base model:
/// - `adapter_model.safetensors`: `base_model.model.<module>.lora_A.weight` (R, I) and
///   `….lora_B.weight` (O, R) for every adapted module (no adapter name inside, as
///   `get_peft_model_state_dict` saves them);
/// - `adapter_config.json`: `peft_type` LORA, `task_type` CAUSAL_LM, `r`, `lora_alpha`,
///   `lora_dropout`, `target_modules`, `bias` none, `fan_in_fan_out` false, `inference_mode` true,
///   `base_model_name_or_path` and the rest of LoraConfig's fields at their defaults.
public enum PEFTAdapter {
    public static let weightsFile = "adapter_model.safetensors"
    public static let configFile = "adapter_config.json"

    /// adapter_config.json's fields for `settings` over `baseModel` (a path or hub name).
    public static func config(_ settings: LoRASettings, baseModel: String) -> [String: Any] {
        let alpha: Any = settings.alpha == settings.alpha.rounded() && abs(settings.alpha) < 1e6 ? Int(settings.alpha) : Double(settings.alpha)
        return [
            "alpha_pattern": [String: Any](),
            "auto_mapping": NSNull(),
            "base_model_name_or_path": baseModel,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "layers_pattern": NSNull(),
            "layers_to_transform": NSNull(),
            "lora_alpha": alpha,
            // The float's shortest decimal (0.05, not 0.0500000007…).
            "lora_dropout": Double("\(settings.dropout)") ?? Double(settings.dropout),
            "modules_to_save": NSNull(),
            "peft_type": "LORA",
            "r": settings.rank,
            "rank_pattern": [String: Any](),
            "revision": NSNull(),
            "target_modules": settings.targets.map(LoRASettings.peftModuleName),
            "task_type": "CAUSAL_LM",
            "use_dora": false,
            "use_rslora": false,
        ]
    }

    /// Writes both files into the existing directory `dir`.
    public static func write(_ adapters: LoRAAdapters, baseModel: String, to dir: URL) throws {
        var entries: [SafeTensorsEntry] = []
        for e in adapters.entries {
            let l = e.layer
            entries.append(SafeTensorsEntry(name: e.site.peftA, floats: l.a, shape: [l.rank, l.inFeatures]))
            entries.append(SafeTensorsEntry(name: e.site.peftB, floats: l.b, shape: [l.outFeatures, l.rank]))
        }
        try SafeTensorsWriter.write(entries, to: dir.appendingPathComponent(weightsFile))
        let json = try JSONSerialization.data(withJSONObject: config(adapters.settings, baseModel: baseModel),
                                              options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try AtomicFile.write(json, to: dir.appendingPathComponent(configFile))
    }

    /// An adapter as read back: its settings, base model and A, B by site.
    public struct Loaded {
        public var settings: LoRASettings
        public var baseModel: String?
        /// A (R·I floats) and B (O·R floats) with their shapes, by site.
        public var tensors: [LoRASite: (a: [Float], aShape: [Int], b: [Float], bShape: [Int])]
    }

    /// Reads an adapter directory written by PEFT or by `write`.
    public static func read(_ dir: URL) throws -> Loaded {
        let cfgURL = dir.appendingPathComponent(configFile)
        guard let cfg = (try? JSONSerialization.jsonObject(with: try RegularFile.contents(cfgURL))) as? [String: Any] else {
            throw InputError(cfgURL.path, "not a JSON object")
        }
        guard (cfg["peft_type"] as? String) == "LORA" else { throw InputError(cfgURL.path, "peft_type is not LORA") }
        guard let r = cfg["r"] as? Int, let alpha = (cfg["lora_alpha"] as? NSNumber)?.floatValue else {
            throw InputError(cfgURL.path, "needs integer 'r' and numeric 'lora_alpha'")
        }
        let dropout = (cfg["lora_dropout"] as? NSNumber)?.floatValue ?? 0
        let targets = try LoRASettings.parseTargets(((cfg["target_modules"] as? [String]) ?? []).joined(separator: ","),
                                                    flag: cfgURL.path)
        let reader = try SafeTensorsReader(dir.appendingPathComponent(weightsFile))
        var out: [LoRASite: (a: [Float], aShape: [Int], b: [Float], bShape: [Int])] = [:]
        for name in reader.names where name.hasSuffix(".lora_A.weight") {
            let module = String(name.dropLast(".lora_A.weight".count))
            guard module.hasPrefix("base_model.model."),
                  let parsed = LlamaNames.parse(String(module.dropFirst("base_model.model.".count))),
                  case .projection(let p) = parsed.role, let layer = parsed.layer, parsed.suffix.isEmpty else {
                throw InputError(dir.appendingPathComponent(weightsFile).path, "'\(name)' is not a Llama projection's LoRA tensor")
            }
            let site = LoRASite(layer: layer, projection: p)
            guard let ai = reader.info(name), let bi = reader.info(site.peftB) else {
                throw InputError(dir.appendingPathComponent(weightsFile).path, "'\(name)' has no matching lora_B")
            }
            guard ai.shape.count == 2, bi.shape.count == 2, ai.shape[0] == r, bi.shape[1] == r else {
                throw InputError(dir.appendingPathComponent(weightsFile).path, "'\(module)' has shapes \(ai.shape), \(bi.shape) for rank \(r)")
            }
            out[site] = (try reader.floats(name).array, ai.shape, try reader.floats(site.peftB).array, bi.shape)
        }
        return Loaded(settings: LoRASettings(rank: r, alpha: alpha, dropout: dropout, targets: targets),
                      baseModel: cfg["base_model_name_or_path"] as? String, tensors: out)
    }
}
