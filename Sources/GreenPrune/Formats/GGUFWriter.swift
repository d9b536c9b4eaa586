import Foundation

/// Writes GGUF v3 files (the layout `GGUFFile` reads): metadata key/values, tensor infos, then
/// the data section with every tensor aligned to `alignment` bytes.
///
/// Tensors are given with their row-major shape (written as ggml `ne`, reversed) and a closure
/// that produces their bytes (whole ggml blocks, e.g. from `ggmlQuantize`) when the writer
/// reaches them, so a quantizer can produce one tensor at a time. The file is written under a
/// temporary name and renamed into place.
public struct GGUFWriter {
    struct Tensor {
        var name: String
        var shape: [Int]
        var type: GGMLType
        var bytes: () throws -> Data
        var byteCount: Int { type.byteCount(weights: shape.reduce(1, *)) }
    }

    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    private var tensors: [Tensor] = []
    /// Data alignment; written as `general.alignment` when it is not the default 32.
    public let alignment: Int

    public init(alignment: Int = 32) throws {
        guard alignment > 0, alignment & (alignment - 1) == 0 else {
            throw InputError("GGUFWriter", "alignment \(alignment) is not a power of two")
        }
        self.alignment = alignment
        if alignment != 32 { metadata.append(("general.alignment", .uint32(UInt32(alignment)))) }
    }

    /// Adds (or replaces) a metadata entry. Arrays must hold values of their element type and
    /// may not nest.
    public mutating func set(_ key: String, _ value: GGUFValue) throws {
        if case .array(let et, let values) = value {
            guard et != 9, et <= 12, values.allSatisfy({ $0.typeCode == et }) else {
                throw InputError(key, "GGUF arrays hold values of one non-array type (element type \(et))")
            }
        }
        if let i = metadata.firstIndex(where: { $0.key == key }) { metadata[i].value = value } else { metadata.append((key, value)) }
    }

    /// Adds a tensor of `type` with row-major `shape`; `bytes` must return
    /// `type.byteCount(weights: shape.product)` bytes. The innermost dimension must be a
    /// multiple of the type's block size.
    public mutating func addTensor(name: String, shape: [Int], type: GGMLType, bytes: @escaping () throws -> Data) throws {
        guard !shape.isEmpty, shape.count <= GGUFFile.Limits.maxDims, shape.allSatisfy({ $0 > 0 }) else {
            throw InputError(name, "GGUF tensors need 1–4 positive dimensions, got \(shape)")
        }
        guard let last = shape.last, last % type.blockWeights == 0 else {
            throw InputError(name, "row length \(shape.last ?? 0) is not a multiple of the \(type.name) block size \(type.blockWeights)")
        }
        guard !tensors.contains(where: { $0.name == name }) else { throw InputError(name, "duplicate tensor name") }
        tensors.append(Tensor(name: name, shape: shape, type: type, bytes: bytes))
    }

    /// Quantizes float32 `values` to `type` (Q8_0, Q4_0, Q4_1 via `ggmlQuantize`; F32, F16, BF16
    /// stored directly) and adds them.
    public mutating func addTensor(name: String, shape: [Int], type: GGMLType, floats values: [Float]) throws {
        guard values.count == shape.reduce(1, *) else {
            throw InputError(name, "\(values.count) values for shape \(shape)")
        }
        try addTensor(name: name, shape: shape, type: type) {
            switch type {
            case .f32: return try SafeTensorsWriter.encode(values, as: .f32)
            case .f16: return try SafeTensorsWriter.encode(values, as: .f16)
            case .bf16: return try SafeTensorsWriter.encode(values, as: .bf16)
            default: return Data(try ggmlQuantize(type, values))
            }
        }
    }

    /// The header: magic, version, counts, metadata, tensor infos, padding to the alignment.
    func header() -> Data {
        var h = Data()
        h.append(contentsOf: Array("GGUF".utf8))
        appendLE(&h, UInt32(3))
        appendLE(&h, UInt64(tensors.count))
        appendLE(&h, UInt64(metadata.count))
        for (k, v) in metadata {
            appendString(&h, k)
            appendLE(&h, v.typeCode)
            appendValue(&h, v)
        }
        var offset = 0
        for t in tensors {
            appendString(&h, t.name)
            appendLE(&h, UInt32(t.shape.count))
            for d in t.shape.reversed() { appendLE(&h, UInt64(d)) }
            appendLE(&h, t.type.rawValue)
            appendLE(&h, UInt64(offset))
            offset = align(offset + t.byteCount)
        }
        h.append(Data(count: align(h.count) - h.count))
        return h
    }

    /// Writes the file atomically, advancing `progress` once per tensor.
    public func write(to url: URL, progress: ProgressBar? = nil) throws {
        let tmp = AtomicFile.temporarySibling(of: url)
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: tmp.path) else {
            throw InputError(url.path, "cannot create \(tmp.lastPathComponent)")
        }
        do {
            try handle.write(contentsOf: header())
            for t in tensors {
                let bytes = try t.bytes()
                guard bytes.count == t.byteCount else {
                    throw InputError(url.path, "tensor '\(t.name)': got \(bytes.count) bytes, expected \(t.byteCount) for \(t.shape) \(t.type.name)")
                }
                try handle.write(contentsOf: bytes)
                let pad = align(bytes.count) - bytes.count
                if pad > 0 { try handle.write(contentsOf: Data(count: pad)) }
                progress?.advance()
            }
            try handle.close()
            try AtomicFile.commit(tmp, to: url)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: tmp)
            if let e = error as? InputError { throw e }
            throw InputError(url.path, "cannot write: \(error.localizedDescription)")
        }
    }

    private func align(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    private func appendLE<T: FixedWidthInteger>(_ d: inout Data, _ v: T) {
        var le = v.littleEndian
        withUnsafeBytes(of: &le) { d.append(contentsOf: $0) }
    }

    private func appendString(_ d: inout Data, _ s: String) {
        appendLE(&d, UInt64(s.utf8.count))
        d.append(contentsOf: Array(s.utf8))
    }

    private func appendValue(_ d: inout Data, _ v: GGUFValue) {
        switch v {
        case .uint8(let x): appendLE(&d, x)
        case .int8(let x): appendLE(&d, x)
        case .uint16(let x): appendLE(&d, x)
        case .int16(let x): appendLE(&d, x)
        case .uint32(let x): appendLE(&d, x)
        case .int32(let x): appendLE(&d, x)
        case .float32(let x): appendLE(&d, x.bitPattern)
        case .bool(let x): appendLE(&d, UInt8(x ? 1 : 0))
        case .string(let s): appendString(&d, s)
        case .uint64(let x): appendLE(&d, x)
        case .int64(let x): appendLE(&d, x)
        case .float64(let x): appendLE(&d, x.bitPattern)
        case .array(let et, let values):
            appendLE(&d, et)
            appendLE(&d, UInt64(values.count))
            for x in values { appendValue(&d, x) }
        }
    }
}
