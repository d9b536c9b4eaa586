import Foundation

/// A Hugging Face TensorFlow checkpoint, `tf_model.h5` as `TFPreTrainedModel.save_pretrained`
/// writes it, read as the float32 tensors, under their PyTorch names and layout, that a
/// safetensors checkpoint of the same model holds.
///
/// Keras' HDF5 layout: one group per Keras layer of the model (`bert`), under it every weight at
/// its TensorFlow name, which starts with the model's scope
/// (`bert/tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0`). The PyTorch name
/// follows transformers' own TF↔PT rule, which knows no model's names: drop the layer group and
/// the model scope, make `_._` a level of its own (`layer_._0` → `layer.0`) and `a___b` the level
/// `b`, drop the `:0`, and rename the Keras leaves (`kernel`, `gamma`, `embeddings` → `weight`;
/// `beta` → `bias`).
/// Dense kernels are stored input-major, (in, out), and come out as PyTorch's (out, in). Which
/// names a model needs is then the loader's business, through the family's name map
/// (`BertNames`), exactly as for a safetensors checkpoint.
///
/// Every dataset is read, converted to float32 by libhdf5, into one read-only block of memory,
/// handed out as a `SafeTensorsFile` over it, so every command that opens a model directory
/// reads the h5 the way it reads safetensors (and writes safetensors). Checked before that
/// memory is allocated: each dataset is floating point, its data lies in this file (not
/// chunked, external or virtual), the file holds all of it, and the data together fits in the
/// file.
public enum TFCheckpoint {
    /// The file name `save_pretrained` gives an unsharded TensorFlow checkpoint.
    public static let fileName = "tf_model.h5"

    /// Keras leaf names and their PyTorch names.
    static let leafNames = ["kernel": "weight", "gamma": "weight", "embeddings": "weight", "beta": "bias",
                            "weight": "weight", "bias": "bias"]

    /// The PyTorch name of the dataset at `path` and whether its (in, out) values become (out, in),
    /// or nil when the path is not `layer group/model scope/…/leaf:N` with a known Keras leaf.
    public static func pyTorchName(_ path: String) -> (name: String, transposed: Bool)? {
        var parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard parts.count >= 3 else { return nil }
        // The leaf's ":0" (TensorFlow's output index).
        if let colon = parts[parts.count - 1].lastIndex(of: ":") {
            let index = parts[parts.count - 1][parts[parts.count - 1].index(after: colon)...]
            guard !index.isEmpty, index.allSatisfy(\.isASCII), index.allSatisfy(\.isNumber) else { return nil }
            parts[parts.count - 1] = String(parts[parts.count - 1][..<colon])
        }
        guard let leaf = leafNames[parts[parts.count - 1]] else { return nil }
        let transposed = parts[parts.count - 1] == "kernel"
        // `a___b` is transformers' way to name a TensorFlow level `b` in PyTorch (`mlm___cls` → `cls`).
        var levels = parts.dropFirst(2).dropLast().flatMap { level in
            (level.range(of: "___", options: .backwards).map { String(level[$0.upperBound...]) } ?? level).components(separatedBy: "_._")
        }
        guard !levels.contains(where: \.isEmpty) else { return nil }
        levels.append(leaf)
        return (levels.joined(separator: "."), transposed)
    }

    /// One dataset to read: where it is in the h5 and where it goes in the image.
    struct Entry {
        var path: String
        var info: SafeTensorInfo
        var transposed: Bool
    }

    /// Reads `url` (a `tf_model.h5`) as a safetensors file held in memory. Errors are one line
    /// naming the file: not HDF5, damaged or truncated, a dataset that is not floating point or
    /// not all in the file, a name that is not a Keras weight, two weights with one PyTorch name.
    public static func open(_ url: URL) throws -> SafeTensorsFile {
        let reader = try HDF5Reader(url: url)
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        var entries: [String: Entry] = [:]
        var stored = 0
        for path in try reader.datasetPaths() {
            let d = try reader.datasetInfo(path)
            guard d.typeClass == .float else {
                throw InputError(url.path, "dataset \(path) is \(d.typeClass), expected floating point")
            }
            guard d.isPlainStorage else {
                throw InputError(url.path, "dataset \(path) is chunked, filtered, virtual or stored in another file; Keras writes contiguous datasets")
            }
            let (bytes, overflow) = d.elementCount.multipliedReportingOverflow(by: d.elementSize)
            guard !overflow, d.storedBytes == bytes else {
                throw InputError(url.path, "dataset \(path) has shape \(d.shape) of \(d.elementSize)-byte values but stores \(d.storedBytes) bytes")
            }
            stored += bytes
            guard stored <= fileSize else {
                throw InputError(url.path, "datasets claim \(stored) bytes, more than the \(fileSize)-byte file")
            }
            guard let (name, transposed) = pyTorchName(path) else {
                throw InputError(url.path, "dataset \(path) is not a Keras weight (layer/model scope/…/kernel:0, bias:0, gamma:0, beta:0, embeddings:0 or weight:0)")
            }
            guard !transposed || d.shape.count == 2 else {
                throw InputError(url.path, "dataset \(path) is a kernel of shape \(d.shape), expected 2 dimensions")
            }
            if let other = entries[name] {
                throw InputError(url.path, "datasets \(other.path) and \(path) both become \(name)")
            }
            let shape = transposed ? [d.shape[1], d.shape[0]] : d.shape
            entries[name] = Entry(path: path, info: SafeTensorInfo(name: name, dtype: .f32, shape: shape, fileRange: 0..<0),
                                  transposed: transposed)
        }
        guard !entries.isEmpty else { throw InputError(url.path, "no datasets: not a TensorFlow model checkpoint") }
        // The image: tensors in name order, each on a 64-byte boundary.
        var ordered = entries.values.sorted { $0.info.name < $1.info.name }
        var end = 0
        for i in ordered.indices {
            let start = (end + 63) / 64 * 64
            end = start + ordered[i].info.elementCount * MemoryLayout<Float>.size
            ordered[i].info.fileRange = start..<end
        }
        let image = try MappedFile(memoryFrom: url, count: end) { base in
            var scratch: [Float] = []
            for e in ordered {
                let dst = (base + e.info.fileRange.lowerBound).assumingMemoryBound(to: Float.self)
                let n = e.info.elementCount
                guard e.transposed else {
                    try reader.readFloats(e.path, into: dst, count: n)
                    continue
                }
                // (in, out) as stored → (out, in).
                let rows = e.info.shape[1], cols = e.info.shape[0]
                if scratch.count < n { scratch = [Float](repeating: 0, count: n) }
                try scratch.withUnsafeMutableBufferPointer { s in
                    try reader.readFloats(e.path, into: s.baseAddress!, count: n)
                    for r in 0..<rows {
                        for c in 0..<cols { dst[c * rows + r] = s[r * cols + c] }
                    }
                }
            }
        }
        return SafeTensorsFile(url: url, image: image,
                               tensors: Dictionary(uniqueKeysWithValues: ordered.map { ($0.info.name, $0.info) }))
    }
}
