import Foundation

// safetensors layout: u64 little-endian N, then N bytes of JSON header, then the data buffer.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data buffer, contiguous, no holes) plus an optional "__metadata__" object of
// string → string. We pad the header with spaces so that N is a multiple of 8 and the data
// buffer starts 8-byte aligned (what the reference implementation does, and what lets a reader
// mmap float32 tensors in place). Tensors are laid out in sorted-name order.

/// One tensor to write: its name, element type, row-major shape, and a closure producing its
/// bytes (little-endian, `shape.product · dtype.size` of them) when the writer reaches it, so a
/// converter can produce one tensor at a time instead of holding them all.
public struct SafeTensorsEntry {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var bytes: () throws -> Data

    public init(name: String, dtype: DType, shape: [Int], bytes: @escaping () throws -> Data) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// A float32 tensor stored as `dtype` (F32, F16 or BF16; rounding to nearest even).
    public init(name: String, floats: [Float], shape: [Int], as dtype: DType = .f32) {
        self.init(name: name, dtype: dtype, shape: shape) { try SafeTensorsWriter.encode(floats, as: dtype) }
    }

    /// An integer tensor (I8, U8, I16, I32 or I64 by the element type), little-endian.
    public init<T: FixedWidthInteger>(name: String, integers: [T], shape: [Int]) throws {
        let dtype: DType
        switch (T.bitWidth, T.isSigned) {
        case (8, true): dtype = .i8
        case (8, false): dtype = .u8
        case (16, true): dtype = .i16
        case (32, true): dtype = .i32
        case (64, true): dtype = .i64
        default: throw InputError(name, "no safetensors dtype for \(T.self)")
        }
        self.init(name: name, dtype: dtype, shape: shape) {
            var d = Data(capacity: integers.count * MemoryLayout<T>.size)
            for v in integers { var le = v.littleEndian; withUnsafeBytes(of: &le) { d.append(contentsOf: $0) } }
            return d
        }
    }

    /// Byte count the header promises.
    public var byteCount: Int { shape.reduce(1, *) * dtype.size }
}

/// Writes `.safetensors` files atomically (temporary sibling, then rename).
public enum SafeTensorsWriter {
    /// Writes `entries` to `url` with `metadata` in `__metadata__` (`"format": "pt"` is added if
    /// absent, as transformers expects). Throws `InputError` naming `url` on any problem
    /// (duplicate names, a producer returning the wrong byte count, I/O).
    public static func write(_ entries: [SafeTensorsEntry], metadata: [String: String] = [:], to url: URL,
                             progress: ProgressBar? = nil) throws {
        let sorted = entries.sorted { $0.name < $1.name }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.name == b.name {
            throw InputError(url.path, "duplicate tensor name '\(a.name)'")
        }
        for e in sorted {
            guard !e.name.isEmpty, e.name != "__metadata__" else { throw InputError(url.path, "invalid tensor name '\(e.name)'") }
            guard e.shape.allSatisfy({ $0 >= 0 }) else { throw InputError(url.path, "tensor '\(e.name)': negative dimension in \(e.shape)") }
        }
        let header = headerBytes(sorted, metadata: metadata)

        let tmp = AtomicFile.temporarySibling(of: url)
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: tmp.path) else {
            throw InputError(url.path, "cannot create \(tmp.lastPathComponent)")
        }
        do {
            var prefix = Data()
            var n = UInt64(header.count).littleEndian
            withUnsafeBytes(of: &n) { prefix.append(contentsOf: $0) }
            prefix.append(header)
            try handle.write(contentsOf: prefix)
            for e in sorted {
                let bytes = try e.bytes()
                guard bytes.count == e.byteCount else {
                    throw InputError(url.path, "tensor '\(e.name)': got \(bytes.count) bytes for shape \(e.shape) \(e.dtype.rawValue), expected \(e.byteCount)")
                }
                try handle.write(contentsOf: bytes)
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

    /// The JSON header for `sorted` entries, padded with spaces to a multiple of 8 bytes.
    static func headerBytes(_ sorted: [SafeTensorsEntry], metadata: [String: String]) -> Data {
        var meta = metadata
        if meta["format"] == nil { meta["format"] = "pt" }
        var parts: [String] = []
        let metaJSON = meta.keys.sorted().map { "\(jsonString($0)):\(jsonString(meta[$0] ?? ""))" }.joined(separator: ",")
        parts.append("\"__metadata__\":{\(metaJSON)}")
        var offset = 0
        for e in sorted {
            let end = offset + e.byteCount
            let shape = e.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var text = "{" + parts.joined(separator: ",") + "}"
        let pad = (8 - text.utf8.count % 8) % 8
        text += String(repeating: " ", count: pad)
        return Data(text.utf8)
    }

    /// Encodes floats as little-endian F32, F16 or BF16 bytes (round to nearest even).
    public static func encode(_ values: [Float], as dtype: DType) throws -> Data {
        switch dtype {
        case .f32:
            #if _endian(little)
            return values.withUnsafeBytes { Data($0) }
            #else
            var d = Data(capacity: values.count * 4)
            for v in values { var le = v.bitPattern.littleEndian; withUnsafeBytes(of: &le) { d.append(contentsOf: $0) } }
            return d
            #endif
        case .f16, .bf16:
            var d = Data(count: values.count * 2)
            d.withUnsafeMutableBytes { raw in
                guard let base = raw.baseAddress else { return }
                for (i, v) in values.enumerated() {
                    let h = dtype == .f16 ? floatToHalf(v) : floatToBF16(v)
                    base.storeBytes(of: h.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            }
            return d
        default:
            throw InputError("--dtype", "cannot store float weights as \(dtype.rawValue) (F32, F16 or BF16)")
        }
    }
}

/// A JSON string literal for `s`: quotes, backslashes and control characters escaped, other
/// characters (non-ASCII included) written as UTF-8, as serde_json and Python's
/// `ensure_ascii=False` do.
public func jsonString(_ s: String) -> String {
    var out = "\""
    out.reserveCapacity(s.utf8.count + 2)
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    out += "\""
    return out
}
