import Foundation
import GreenPrune
import Testing

/// A model directory with only tf_model.h5 (issue 23) through the CLI: the commands read it as
/// they read safetensors, and a damaged h5 fails each of them with one line naming it.
extension HostileModelInputTests {
    typealias H5Dataset = (path: String, values: [Float], shape: [Int])

    /// The datasets of the tiny TensorFlow BERT (Fixtures/tf-bert/h5), as float32.
    func tfDatasets() throws -> [H5Dataset] {
        let r = try HDF5Reader(url: TFCheckpointTests.h5Directory.appendingPathComponent(TFCheckpoint.fileName))
        return try r.datasetPaths().map { p -> H5Dataset in (p, try r.readDoubles(p).map { Float($0) }, try r.shape(p)) }
    }

    /// A copy of the tiny TensorFlow BERT's directory (config.json, tokenizer files) whose
    /// tf_model.h5 is `write`'s.
    func tfModelDirectory(_ name: String, writingH5 write: (URL) throws -> Void) throws -> URL {
        let dir = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for f in try FileManager.default.contentsOfDirectory(atPath: TFCheckpointTests.h5Directory.path) where f != TFCheckpoint.fileName {
            try FileManager.default.copyItem(at: TFCheckpointTests.h5Directory.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        try write(dir.appendingPathComponent(TFCheckpoint.fileName))
        return dir
    }

    /// The tiny TensorFlow BERT's datasets after `edit`, written by GreenPrune's HDF5 writer.
    func tfModel(_ name: String, editing edit: (inout [H5Dataset]) throws -> Void) throws -> URL {
        var sets = try tfDatasets()
        try edit(&sets)
        return try tfModelDirectory(name) { url in
            let w = try HDF5Writer(url: url)
            for s in sets { try w.write(s.path, s.values, shape: s.shape) }
            try w.close()
        }
    }

    func embeddings(_ r: CLIResult) throws -> [[Float]] {
        try r.stdout.split(separator: "\n").map { line in
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return ModelsFixtures.floatList(obj["embedding"])
        }
    }

    /// The directory with only tf_model.h5 works where the safetensors one does: `inspect`,
    /// `embed` (the same vectors), and `quantize`, whose output is safetensors without the h5;
    /// the rewritten h5 (GreenPrune's own writer, the same datasets) reads the same too.
    @Test func tfCheckpointDirectoryWorksForEveryCommand() throws {
        let texts = ["--text", "The quick brown fox.", "--text", "a short one"]
        let h5 = TFCheckpointTests.h5Directory.path, st = TFCheckpointTests.safetensorsDirectory.path
        let inspect = try cli(["inspect", h5])
        #expect(inspect.status == 0 && inspect.stdout.contains("bert"), "\(inspect.stderr)")
        let fromH5 = try cli(["embed", h5, "--json"] + texts), fromST = try cli(["embed", st, "--json"] + texts)
        #expect(fromH5.status == 0 && fromST.status == 0, "\(fromH5.stderr) \(fromST.stderr)")
        let a = try embeddings(fromH5), b = try embeddings(fromST)
        #expect(a.count == 2 && b.count == 2)
        for (x, y) in zip(a, b) { #expect(ModelsFixtures.cosine(x, y) >= 0.99999) }

        let rewritten = try tfModel("tf-rewritten") { _ in }
        let c = try embeddings(try cli(["embed", rewritten.path, "--json"] + texts))
        #expect(c == a)

        let out = root.appendingPathComponent("tf-int8")
        let q = try cli(["quantize", h5, "--out", out.path, "--bits", "8", "--quiet"])
        #expect(q.status == 0, "\(q.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path)
        #expect(files.contains("model.safetensors") && files.contains("tokenizer.json") && !files.contains(TFCheckpoint.fileName), "\(files)")
        let quantized = try embeddings(try cli(["embed", out.path, "--json"] + texts))
        #expect(quantized.count == 2)
        for (x, y) in zip(quantized, a) { #expect(ModelsFixtures.cosine(x, y) >= 0.999) }
    }

    /// A damaged tf_model.h5 (a dataset missing, of the wrong shape, integer, holding NaN, not a
    /// Keras weight; a file that is not HDF5 or is cut short) fails inspect, embed and quantize
    /// with one line naming it, and quantize writes nothing.
    @Test(arguments: ["missing", "wrong-shape", "integer", "nan", "not-keras", "not-hdf5", "truncated"])
    func invalidTFCheckpointIsRefusedByEveryCommand(kind: String) throws {
        let query0 = "layer_._0/attention/self/query/kernel:0"
        func index(_ sets: [H5Dataset], _ suffix: String) throws -> Int { try #require(sets.firstIndex { $0.path.hasSuffix(suffix) }) }
        let model: URL, phrase: String
        switch kind {
        case "missing":
            model = try tfModel(kind) { sets in
                let i = try index(sets, "layer_._1/attention/self/key/kernel:0")
                sets.remove(at: i)
            }
            phrase = "missing bert." + BertNames.module(.key, layer: 1) + ".weight"
        case "wrong-shape":
            model = try tfModel(kind) { sets in
                let i = try index(sets, query0)
                sets[i].values = Array(sets[i].values.prefix(sets[i].values.count / 2))
                sets[i].shape = [sets[i].shape[0], sets[i].shape[1] / 2]
            }
            phrase = "bert." + BertNames.module(.query, layer: 0)
        case "integer":
            let sets = try tfDatasets()
            let i = try index(sets, query0)
            model = try tfModelDirectory(kind) { url in
                let w = try HDF5Writer(url: url)
                for (j, s) in sets.enumerated() {
                    if j == i { try w.write(s.path, s.values.map { Int32($0 * 100) }, shape: s.shape) } else { try w.write(s.path, s.values, shape: s.shape) }
                }
                try w.close()
            }
            phrase = "\(sets[i].path) is integer, expected floating point"
        case "nan":
            model = try tfModel(kind) { sets in
                let i = try index(sets, "layer_._1/output/LayerNorm/gamma:0")
                sets[i].values[3] = .nan
            }
            phrase = "'bert.\(BertNames.outputLayerNorm(layer: 1)).weight' holds a non-finite value"
        case "not-keras":
            model = try tfModel(kind) { $0.append(("/extra/moving_mean", [1, 2], [2])) }
            phrase = "/extra/moving_mean is not a Keras weight"
        case "not-hdf5":
            model = try tfModelDirectory(kind) { try Data("{\"weights\": []}".utf8).write(to: $0) }
            phrase = "not an HDF5 file"
        default:
            let bytes = try Data(contentsOf: TFCheckpointTests.h5Directory.appendingPathComponent(TFCheckpoint.fileName))
            model = try tfModelDirectory(kind) { try bytes.prefix(bytes.count / 2).write(to: $0) }
            phrase = "damaged or truncated HDF5 file"
        }
        let file = model.appendingPathComponent(TFCheckpoint.fileName).path
        #expect(throws: InputError.self) { _ = try ModelLoader.load(model) }
        let out = root.appendingPathComponent("out-tf-\(kind)")
        for (label, args) in commands(model, out: out) where ["inspect", "embed", "quantize"].contains(label) {
            expectCleanError(try cli(args), file: file, phrase, "\(label) \(kind)")
        }
        try expectNothingWritten(out, kind)
    }
}
