import Foundation
import GreenPrune

/// One reader under fuzzing: it gets arbitrary bytes and must return or throw, nothing else
/// (no trap, no hang, no allocation sized by an unchecked count).
///
/// Readers that take a URL get the bytes through a scratch file, rewritten for every input.
struct FuzzTarget {
    let name: String
    /// What the input stands for, for `greenprune-fuzz --list`.
    let summary: String
    let run: (Data, FuzzScratch) throws -> Void

    static let all: [FuzzTarget] = [
        FuzzTarget(name: "safetensors", summary: "a .safetensors file (header, offsets, dtype conversion)") { data, scratch in
            let file = try SafeTensorsFile(try scratch.write(data, as: "model.safetensors"))
            for info in file.tensors.values.sorted(by: { $0.name < $1.name }) {
                _ = file.bytes(info).reduce(0 as UInt8, &+)
                if info.elementCount <= 1 << 16 { _ = try? file.floats(info) }  // an integer dtype is an error, not the end
            }
        },
        FuzzTarget(name: "gguf", summary: "a .gguf file (header, metadata, tensor infos, dequantization)") { data, scratch in
            let file = try GGUFFile(url: try scratch.write(data, as: "model.gguf"))
            for (_, value) in file.metadata { _ = (value.int, value.double, value.string, value.array?.count) }
            for t in file.tensors where t.count <= 1 << 16 { _ = try? file.floats(t) }
        },
        FuzzTarget(name: "tokenizer", summary: "a tokenizer.json (then encodes and decodes a short text)") { data, scratch in
            let tok = try TokenizerLoader.load(tokenizerJSON: try scratch.write(data, as: "tokenizer.json"), config: nil)
            let ids = try tok.encode("Hello, world! 12 héllo\tthe quick  brown fox.", addSpecialTokens: true)
            _ = tok.decode(ids, skipSpecialTokens: false)
            _ = tok.decode([0, 1, 2, tok.vocabularySize - 1, tok.vocabularySize, -1], skipSpecialTokens: true)
        },
        FuzzTarget(name: "config", summary: "a config.json (ConfigJSON, ModelConfig and its decoder/encoder validation)") { data, _ in
            let json = try ConfigJSON(data: data, path: "config.json")
            _ = json.data()
            let config = json.model
            switch try config.family(path: "config.json") {
            case .llama:
                let l = try config.llama(path: "config.json")
                if l.headDim <= 4096 { _ = l.rope.inverseFrequencies(headDim: l.headDim) }
            case .bert: _ = try config.bert(path: "config.json")
            case let f: _ = try DecoderFamilies.family(named: f)?.layerCount(json)
            }
        },
        FuzzTarget(name: "h5", summary: "a tf_model.h5 (libhdf5 through HDF5Reader, TFCheckpoint's dataset checks, names and transposes)") { data, scratch in
            // libhdf5 reads files, not memory: the input goes through the scratch file.
            let file = try TFCheckpoint.open(try scratch.write(data, as: TFCheckpoint.fileName))
            for info in file.tensors.values.sorted(by: { $0.name < $1.name }) where info.elementCount <= 1 << 16 {
                _ = try file.floats(info)
            }
        },
        FuzzTarget(name: "trainingdata", summary: "a recover training file (JSONL of text or Alpaca records, or one JSON array)") { data, scratch in
            _ = try TrainingData.records(file: try scratch.write(data, as: "train.jsonl"))
        },
        FuzzTarget(name: "sweep", summary: "a sweep YAML config (parse, validate, expand the plan)") { data, scratch in
            let config = try SweepConfig.parse(String(decoding: data, as: UTF8.self), file: "sweep.yaml",
                                               defaults: ["smollm2": scratch.directory, "minilm": scratch.directory])
            _ = SweepPlan(config: config)
        },
        FuzzTarget(name: "taskspec", summary: "a multiple-choice task description (configs/tasks/*.yaml)") { data, scratch in
            let spec = try MultipleChoiceSpec.load(try scratch.write(data, as: "task.yaml"))
            _ = MultipleChoiceTask(spec: spec).configuration
        },
        FuzzTarget(name: "taskdata", summary: "an evaluation data file; the first byte picks the task (hellaswag, piqa, …, wikitext, lambada, stsb); a NUL separates data and labels") { data, scratch in
            guard let selector = data.first else { return }
            let body = data.dropFirst()
            let tasks = try FuzzTaskData.tasks()
            switch tasks[Int(selector) % tasks.count] {
            case .language(let task):
                // A task with a labels file reads two files: the input holds both, split at its first NUL.
                let files = FuzzTaskData.files(of: task)
                let parts = files.count > 1 ? body.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false) : [body]
                for (i, file) in files.enumerated() { _ = try scratch.write(i < parts.count ? Data(parts[i]) : Data(), as: "data/" + file) }
                let setup = TaskSetup(dataDirectory: scratch.directory.appendingPathComponent("data"))
                for doc in try task.documents(setup) {
                    let answers = doc.requests.map { _ in Answer(loglikelihood: -1, isGreedy: false, tokenCount: 1) }
                    _ = task.process(doc, answers: answers)
                }
            case .stsb:
                _ = try scratch.write(body, as: "data/" + STSBenchmark.file)
                _ = try STSBenchmark.pairs(dataDirectory: scratch.directory.appendingPathComponent("data"))
            }
        },
    ]

    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}
