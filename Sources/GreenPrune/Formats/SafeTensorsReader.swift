import Foundation

/// One tensor's entry in a safetensors header.
public struct SafeTensorInfo: Sendable, Equatable {
    /// Checkpoint name (`model.layers.0.self_attn.q_proj.weight`).
    public var name: String
    public var dtype: DType
    /// Dimensions, outermost first (row-major).
    public var shape: [Int]
    /// Byte range inside the file (data section offset already added).
    public var fileRange: Range<Int>
    /// Number of elements, product(shape).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A single `.safetensors` file, mapped with mmap and validated up front.
///
/// Layout (huggingface/safetensors): 8-byte little-endian header length `n`, `n` bytes of JSON
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the
/// data section; offsets are relative to the data section. Everything is checked before any
/// tensor is read: the header fits in the file, the JSON parses, each dtype is known, each
/// range lies inside the data section, ranges do not overlap, and `end - begin` equals
/// product(shape) · dtype size. Every failure is one line naming the file.
public final class SafeTensorsFile: @unchecked Sendable {
    public let url: URL
    public let file: MappedFile
    /// Tensors by name.
    public let tensors: [String: SafeTensorInfo]
    /// The optional `__metadata__` map.
    public let metadata: [String: String]

    /// Headers larger than this are rejected (the real ones are kilobytes).
    public static let maxHeaderBytes = 100 << 20

    public init(_ url: URL) throws {
        self.url = url
        file = try MappedFile(url)
        let path = url.path
        guard file.count >= 8 else {
            throw InputError(path, "truncated safetensors file: \(file.count) bytes, the 8-byte header length is missing")
        }
        let raw = file.bytes(0..<8)
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(raw[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(SafeTensorsFile.maxHeaderBytes) else {
            throw InputError(path, "safetensors header length \(n) exceeds the \(SafeTensorsFile.maxHeaderBytes)-byte limit")
        }
        guard 8 + Int(n) <= file.count else {
            throw InputError(path, "safetensors header length \(n) runs past the end of the \(file.count)-byte file")
        }
        let headerBytes = Data(file.bytes(8..<(8 + Int(n))))
        let dataStart = 8 + Int(n)
        let dataSize = file.count - dataStart
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes, options: [])
        } catch {
            throw InputError(path, "safetensors header is not valid JSON")
        }
        guard let top = json as? [String: Any] else {
            throw InputError(path, "safetensors header is not a JSON object")
        }
        var tensors: [String: SafeTensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in top {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else {
                    throw InputError(path, "__metadata__ is not an object")
                }
                for (k, v) in m {
                    guard let s = v as? String else { throw InputError(path, "__metadata__ value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else {
                throw InputError(path, "tensor '\(name)': entry is not an object")
            }
            guard let dtypeName = entry["dtype"] as? String else {
                throw InputError(path, "tensor '\(name)': missing or non-string dtype")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw InputError(path, "tensor '\(name)': unknown dtype '\(dtypeName)'")
            }
            guard let shapeAny = entry["shape"] as? [Any] else {
                throw InputError(path, "tensor '\(name)': missing shape")
            }
            var shape: [Int] = []
            var elements = 1
            for d in shapeAny {
                guard let dim = SafeTensorsFile.integer(d), dim >= 0 else {
                    throw InputError(path, "tensor '\(name)': shape \(shapeAny) has a non-integer or negative dimension")
                }
                let (p, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow, p <= Int(Int32.max) * 64 else {
                    throw InputError(path, "tensor '\(name)': shape \(shapeAny) is too large")
                }
                elements = p
                shape.append(dim)
            }
            guard let offs = entry["data_offsets"] as? [Any], offs.count == 2,
                  let begin = SafeTensorsFile.integer(offs[0]), let end = SafeTensorsFile.integer(offs[1]) else {
                throw InputError(path, "tensor '\(name)': data_offsets must be two integers")
            }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw InputError(path, "tensor '\(name)': data_offsets [\(begin), \(end)] outside the \(dataSize)-byte data section")
            }
            guard end - begin == elements * dtype.size else {
                throw InputError(path, "tensor '\(name)': shape \(shape) of \(dtypeName) needs \(elements * dtype.size) bytes but data_offsets span \(end - begin)")
            }
            tensors[name] = SafeTensorInfo(name: name, dtype: dtype, shape: shape,
                                           fileRange: (dataStart + begin)..<(dataStart + end))
        }
        // Non-overlapping: sorted by start, each tensor starts at or after the previous end.
        let sorted = tensors.values.filter { !$0.fileRange.isEmpty }.sorted { $0.fileRange.lowerBound < $1.fileRange.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.fileRange.lowerBound < a.fileRange.upperBound {
            throw InputError(path, "tensors '\(a.name)' and '\(b.name)' have overlapping data_offsets")
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Tensors already laid out in `image` (F32, converted from another format: `TFCheckpoint`);
    /// `url` is that format's file, named in errors.
    init(url: URL, image: MappedFile, tensors: [String: SafeTensorInfo]) {
        self.url = url
        file = image
        self.tensors = tensors
        metadata = [:]
    }

    /// JSON integers arrive as NSNumber; reject fractions, booleans and out-of-range values.
    static func integer(_ v: Any) -> Int? {
        if let i = v as? Int { return i }
        if let d = v as? Double, d == d.rounded(), abs(d) < 9e15 { return Int(d) }
        return nil
    }

    /// The tensor's raw bytes (zero-copy).
    public func bytes(_ info: SafeTensorInfo) -> UnsafeRawBufferPointer { file.bytes(info.fileRange) }

    /// Drops the resident pages of a tensor whose values were copied (see `MappedFile.release`).
    public func release(_ info: SafeTensorInfo) { file.release(info.fileRange) }

    /// The tensor as float32: a zero-copy view when it is F32 and 4-byte aligned, else a
    /// converted copy (F16, BF16, F64, or unaligned F32). Integer dtypes are an error.
    public func floats(_ info: SafeTensorInfo) throws -> FloatStorage {
        let raw = bytes(info)
        let n = info.elementCount
        if info.dtype == .f32, let b = raw.baseAddress, Int(bitPattern: b) % MemoryLayout<Float>.alignment == 0 {
            return FloatStorage(view: b.assumingMemoryBound(to: Float.self), count: n, mapping: file)
        }
        let out = FloatStorage(zeros: n)
        guard let dst = out.mutablePointer else { return out }
        switch info.dtype {
        case .f32:
            memcpy(dst, raw.baseAddress!, n * 4)
        case .f16:
            for i in 0..<n { dst[i] = halfToFloat(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<n { dst[i] = bf16ToFloat(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .f64:
            for i in 0..<n { dst[i] = Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        default:
            throw InputError(url.path, "tensor '\(info.name)' is \(info.dtype.rawValue), expected a floating-point dtype")
        }
        return out
    }
}

/// The tensors of a model: one `.safetensors` file, or the shards listed in
/// `model.safetensors.index.json` (`{"weight_map": {tensor name: shard file}}`).
public final class SafeTensorsReader: @unchecked Sendable {
    /// Files in load order.
    public let files: [SafeTensorsFile]
    private let owner: [String: Int]

    /// Opens `url`: a `.safetensors` file, an index `.json`, a TensorFlow `.h5` checkpoint
    /// (`TFCheckpoint`, converted in memory), or a directory holding `model.safetensors`,
    /// `model.safetensors.index.json` or, failing those, `tf_model.h5`.
    public init(_ url: URL) throws {
        (files, owner) = try SafeTensorsReader.open(url)
    }

    private static func open(_ url: URL) throws -> ([SafeTensorsFile], [String: Int]) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw InputError(url.path, "no such file or directory")
        }
        if isDir.boolValue {
            let single = url.appendingPathComponent("model.safetensors")
            let index = url.appendingPathComponent("model.safetensors.index.json")
            if FileManager.default.fileExists(atPath: single.path) { return try open(single) }
            if FileManager.default.fileExists(atPath: index.path) { return try open(index) }
            let tf = url.appendingPathComponent(TFCheckpoint.fileName)
            if FileManager.default.fileExists(atPath: tf.path) { return try open(tf) }
            throw InputError(url.path, "no model.safetensors, model.safetensors.index.json or \(TFCheckpoint.fileName) in the directory")
        }
        if url.pathExtension == "json" { return try openSharded(index: url) }
        if url.pathExtension == "h5" {
            let f = try TFCheckpoint.open(url)
            return ([f], f.tensors.mapValues { _ in 0 })
        }
        let f = try SafeTensorsFile(url)
        return ([f], Dictionary(uniqueKeysWithValues: f.tensors.keys.map { ($0, 0) }))
    }

    private static func openSharded(index url: URL) throws -> ([SafeTensorsFile], [String: Int]) {
        let data = try RegularFile.contents(url)
        guard let top = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw InputError(url.path, "index is not a JSON object")
        }
        guard let map = top["weight_map"] as? [String: Any], !map.isEmpty else {
            throw InputError(url.path, "index has no weight_map")
        }
        let dir = url.deletingLastPathComponent()
        var files: [SafeTensorsFile] = []
        var fileIndex: [String: Int] = [:]
        var owner: [String: Int] = [:]
        for name in map.keys.sorted() {
            guard let shard = map[name] as? String, !shard.isEmpty, !shard.contains("/"), shard != "..", shard != "." else {
                throw InputError(url.path, "weight_map entry for '\(name)' is not a plain file name")
            }
            let i: Int
            if let j = fileIndex[shard] { i = j } else {
                files.append(try SafeTensorsFile(dir.appendingPathComponent(shard)))
                i = files.count - 1
                fileIndex[shard] = i
            }
            guard files[i].tensors[name] != nil else {
                throw InputError(url.path, "tensor '\(name)' is mapped to \(shard) but that shard does not hold it")
            }
            owner[name] = i
        }
        return (files, owner)
    }

    /// Every tensor name, sorted.
    public var names: [String] { owner.keys.sorted() }
    /// Header entry of `name` (nil if absent).
    public func info(_ name: String) -> SafeTensorInfo? {
        guard let i = owner[name] else { return nil }
        return files[i].tensors[name]
    }
    /// The file holding `name`.
    public func file(of name: String) -> SafeTensorsFile? { owner[name].map { files[$0] } }
    /// Total bytes of the files on disk.
    public var bytesOnDisk: Int { files.reduce(0) { $0 + $1.file.count } }

    /// `name` as float32 (zero-copy for aligned F32); the error names the file and tensor.
    public func floats(_ name: String) throws -> FloatStorage {
        guard let i = owner[name], let info = files[i].tensors[name] else {
            throw InputError(files.first?.url.path ?? "safetensors", "no tensor named '\(name)'")
        }
        return try files[i].floats(info)
    }

    /// `name` as float32, checking its shape.
    public func floats(_ name: String, shape: [Int]) throws -> FloatStorage {
        guard let info = info(name), let f = file(of: name) else {
            throw InputError(files.first?.url.path ?? "safetensors", "no tensor named '\(name)'")
        }
        guard info.shape == shape else {
            throw InputError(f.url.path, "tensor '\(name)' has shape \(info.shape), expected \(shape)")
        }
        return try f.floats(info)
    }
}
