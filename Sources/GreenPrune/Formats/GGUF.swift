import Foundation

// A bounded reader for GGUF v2/v3 files (llama.cpp's model format).
//
// Layout (little-endian):
//   "GGUF" u32 version u64 n_tensors u64 n_kv
//   n_kv × { string key, u32 value_type, value }          string = u64 length + UTF-8 bytes
//   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   padding to `general.alignment` (default 32), then the data section; each tensor's
//   `offset` is relative to the data section and aligned.
// ne[0] is the innermost (fastest-varying) dimension, so the row-major shape is ne reversed.
//
// The file is memory-mapped, never trusted: every read checks the bytes left, counts and
// lengths are capped (by a fixed limit and by what the remaining bytes could possibly hold),
// element counts are checked for overflow, and each tensor's data range must lie inside the
// file. Every failure is an `InputError` naming the file and the problem.

/// A GGUF metadata value.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// An array of one element type (`elementType` is GGUF's value-type code).
    case array(elementType: UInt32, values: [GGUFValue])

    /// The value as an integer, if it is one of the integer types (or a bool).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(exactly: v)
        case .bool(let v): return v ? 1 : 0
        default: return nil
        }
    }

    /// The value as a double, if it is numeric.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var array: [GGUFValue]? { if case .array(_, let v) = self { return v } else { return nil } }

    /// GGUF's value-type code for this value.
    public var typeCode: UInt32 {
        switch self {
        case .uint8: return 0
        case .int8: return 1
        case .uint16: return 2
        case .int16: return 3
        case .uint32: return 4
        case .int32: return 5
        case .float32: return 6
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        case .uint64: return 10
        case .int64: return 11
        case .float64: return 12
        }
    }
}

/// One tensor's entry in a GGUF file.
public struct GGUFTensorInfo: Equatable, Sendable {
    public var name: String
    /// Row-major shape (ggml's `ne` reversed): [rows, columns] for a matrix.
    public var shape: [Int]
    public var type: GGMLType
    /// Absolute byte offset of the tensor's data in the file.
    public var fileOffset: Int
    /// Bytes of data (whole blocks).
    public var byteCount: Int

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
}

/// A parsed, memory-mapped GGUF file.
public final class GGUFFile {
    /// Hard caps on what a header may declare (beyond the file's own size).
    public enum Limits {
        public static let maxTensors = 1 << 20
        public static let maxKeyValues = 1 << 20
        public static let maxStringBytes = 1 << 26
        public static let maxArrayCount = 1 << 28
        public static let maxDims = 4
    }

    public let url: URL
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment` (default 32).
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    private let data: Data
    private let index: [String: Int]
    private let metadataIndex: [String: Int]

    /// Maps and parses `url`. Throws `InputError` on any malformed or unsupported content.
    public init(url: URL) throws {
        self.url = url
        let data: Data
        try RegularFile.check(url)
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw InputError(url.path, "cannot read GGUF file: \(error.localizedDescription)")
        }
        self.data = data
        let parsed = try data.withUnsafeBytes { raw in
            var parser = GGUFParser(raw: raw, path: url.path)
            return try parser.parse()
        }
        version = parsed.version
        metadata = parsed.metadata
        tensors = parsed.tensors
        alignment = parsed.alignment
        dataOffset = parsed.dataOffset
        var idx: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { idx[t.name] = i }
        index = idx
        var midx: [String: Int] = [:]
        for (i, kv) in metadata.enumerated() { midx[kv.key] = i }
        metadataIndex = midx
    }

    /// The metadata value for `key`, if present.
    public subscript(key: String) -> GGUFValue? {
        metadataIndex[key].map { metadata[$0].value }
    }

    /// The tensor named `name`, if present.
    public func tensor(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// Calls `body` with the raw bytes of `tensor` (valid only inside the call).
    public func withBytes<R>(of tensor: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try data.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[tensor.fileOffset ..< tensor.fileOffset + tensor.byteCount]))
        }
    }

    /// The tensor's values as float32 (row-major, `tensor.shape`).
    public func floats(_ tensor: GGUFTensorInfo) throws -> [Float] {
        do {
            return try withBytes(of: tensor) { try ggmlDequantize(tensor.type, $0, count: tensor.count) }
        } catch let e as GGMLBlockError {
            throw InputError(url.path, "tensor '\(tensor.name)': \(e.description)")
        }
    }
}

/// The header parser: a cursor over the mapped bytes that checks every read.
private struct GGUFParser {
    let raw: UnsafeRawBufferPointer
    let path: String
    var pos = 0

    init(raw: UnsafeRawBufferPointer, path: String) {
        self.raw = raw
        self.path = path
    }

    var left: Int { raw.count - pos }

    func fail(_ problem: String) -> InputError { InputError(path, problem) }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, n <= left else {
            throw fail("truncated: \(what()) needs \(n) bytes at offset \(pos), only \(left) left")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = T(littleEndian: raw.loadUnaligned(fromByteOffset: pos, as: T.self))
        pos += MemoryLayout<T>.size
        return v
    }

    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let n64 = try read(UInt64.self, "length of \(what())")
        guard n64 <= UInt64(GGUFFile.Limits.maxStringBytes) else {
            throw fail("\(what()) declares a string of \(n64) bytes (limit \(GGUFFile.Limits.maxStringBytes))")
        }
        let n = Int(n64)
        guard n <= left else {
            throw fail("\(what()) declares a string of \(n) bytes at offset \(pos), past the end of the file (\(left) bytes left)")
        }
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: raw[pos ..< pos + n]), as: UTF8.self)
        pos += n
        return s
    }

    /// The smallest encoded size of a value of `type` (to cap array counts by bytes left).
    func minSize(_ type: UInt32) -> Int {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        default: return 8 // u64, i64, f64, string length, array header ≥ 12
        }
    }

    mutating func readValue(_ type: UInt32, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try read(UInt8.self, "value of \(key)"))
        case 1: return .int8(try read(Int8.self, "value of \(key)"))
        case 2: return .uint16(try read(UInt16.self, "value of \(key)"))
        case 3: return .int16(try read(Int16.self, "value of \(key)"))
        case 4: return .uint32(try read(UInt32.self, "value of \(key)"))
        case 5: return .int32(try read(Int32.self, "value of \(key)"))
        case 6: return .float32(Float(bitPattern: try read(UInt32.self, "value of \(key)")))
        case 7:
            let b = try read(UInt8.self, "value of \(key)")
            guard b <= 1 else { throw fail("metadata '\(key)': bool value \(b) is neither 0 nor 1") }
            return .bool(b == 1)
        case 8: return .string(try readString("metadata '\(key)'"))
        case 10: return .uint64(try read(UInt64.self, "value of \(key)"))
        case 11: return .int64(try read(Int64.self, "value of \(key)"))
        case 12: return .float64(Double(bitPattern: try read(UInt64.self, "value of \(key)")))
        case 9:
            guard depth == 0 else { throw fail("metadata '\(key)': nested arrays are not supported") }
            let et = try read(UInt32.self, "array type of \(key)")
            guard et <= 12 else { throw fail("metadata '\(key)': unknown array element type \(et)") }
            guard et != 9 else { throw fail("metadata '\(key)': nested arrays are not supported") }
            let n64 = try read(UInt64.self, "array length of \(key)")
            guard n64 <= UInt64(GGUFFile.Limits.maxArrayCount), Int(n64) <= left / minSize(et) else {
                throw fail("metadata '\(key)': array of \(n64) elements cannot fit in the \(left) bytes left")
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(n64))
            for _ in 0..<Int(n64) { values.append(try readValue(et, key: key, depth: depth + 1)) }
            return .array(elementType: et, values: values)
        default:
            throw fail("metadata '\(key)': unknown value type \(type)")
        }
    }

    struct Parsed {
        var version: UInt32
        var metadata: [(key: String, value: GGUFValue)]
        var tensors: [GGUFTensorInfo]
        var alignment: Int
        var dataOffset: Int
    }

    mutating func parse() throws -> Parsed {
        try need(4, "magic")
        guard raw[0] == 0x47, raw[1] == 0x47, raw[2] == 0x55, raw[3] == 0x46 else {
            let got = (0..<4).map { String(format: "%02x", raw[$0]) }.joined()
            throw fail("not a GGUF file (magic \(got), expected 'GGUF')")
        }
        pos = 4
        let version = try read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            throw fail("unsupported GGUF version \(version) (supported: 2, 3)")
        }
        let nTensors = try read(UInt64.self, "tensor count")
        let nKV = try read(UInt64.self, "metadata count")
        // A KV takes ≥ 8 (key length) + 4 (type) + 1 bytes; a tensor info ≥ 8 + 4 + 4 + 8 bytes.
        guard nTensors <= UInt64(GGUFFile.Limits.maxTensors), Int(nTensors) <= left / 24 else {
            throw fail("header declares \(nTensors) tensors, more than the file can hold")
        }
        guard nKV <= UInt64(GGUFFile.Limits.maxKeyValues), Int(nKV) <= left / 13 else {
            throw fail("header declares \(nKV) metadata entries, more than the file can hold")
        }

        var metadata: [(key: String, value: GGUFValue)] = []
        var seenKeys = Set<String>()
        for i in 0..<Int(nKV) {
            let key = try readString("metadata key #\(i)")
            guard seenKeys.insert(key).inserted else { throw fail("duplicate metadata key '\(key)'") }
            let type = try read(UInt32.self, "type of \(key)")
            metadata.append((key, try readValue(type, key: key, depth: 0)))
        }

        var alignment = 32
        if let kv = metadata.first(where: { $0.key == "general.alignment" }) {
            guard case .uint32(let a) = kv.value else { throw fail("general.alignment must be a uint32") }
            guard a > 0, a & (a - 1) == 0, a <= 1 << 20 else {
                throw fail("bad general.alignment \(a) (must be a power of two)")
            }
            alignment = Int(a)
        }

        struct RawInfo { var name: String; var ne: [Int]; var type: GGMLType; var offset: UInt64 }
        var infos: [RawInfo] = []
        var seenNames = Set<String>()
        for i in 0..<Int(nTensors) {
            let name = try readString("name of tensor #\(i)")
            guard seenNames.insert(name).inserted else { throw fail("duplicate tensor name '\(name)'") }
            let nDims = try read(UInt32.self, "dimension count of \(name)")
            guard nDims >= 1, nDims <= UInt32(GGUFFile.Limits.maxDims) else {
                throw fail("tensor '\(name)': \(nDims) dimensions (supported: 1...\(GGUFFile.Limits.maxDims))")
            }
            var ne: [Int] = []
            var elements = 1
            for _ in 0..<Int(nDims) {
                let d = try read(UInt64.self, "dimensions of \(name)")
                guard d > 0, d <= UInt64(Int32.max) else { throw fail("tensor '\(name)': bad dimension \(d)") }
                let (p, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                guard !overflow, p <= 1 << 40 else { throw fail("tensor '\(name)': element count overflows") }
                elements = p
                ne.append(Int(d))
            }
            let code = try read(UInt32.self, "type of \(name)")
            guard let type = GGMLType(rawValue: code) else {
                throw fail("tensor '\(name)': unknown ggml type \(code)")
            }
            guard ne[0] % type.blockWeights == 0 else {
                throw fail("tensor '\(name)': row length \(ne[0]) is not a multiple of the \(type.name) block size \(type.blockWeights)")
            }
            let offset = try read(UInt64.self, "data offset of \(name)")
            infos.append(RawInfo(name: name, ne: ne, type: type, offset: offset))
        }

        // The data section starts at the next multiple of the alignment.
        let dataOffset = (pos + alignment - 1) / alignment * alignment
        guard dataOffset <= raw.count else {
            throw fail("truncated: data section would start at \(dataOffset), past the end of the file (\(raw.count) bytes)")
        }
        let dataBytes = raw.count - dataOffset
        var tensors: [GGUFTensorInfo] = []
        for info in infos {
            let bytes = info.type.byteCount(weights: info.ne.reduce(1, *))
            guard info.offset % UInt64(alignment) == 0 else {
                throw fail("tensor '\(info.name)': data offset \(info.offset) is not aligned to \(alignment)")
            }
            guard info.offset <= UInt64(dataBytes), bytes <= dataBytes - Int(info.offset) else {
                throw fail("tensor '\(info.name)': data [\(info.offset), \(info.offset) + \(bytes)) runs past the end of the data section (\(dataBytes) bytes)")
            }
            tensors.append(GGUFTensorInfo(name: info.name, shape: info.ne.reversed(), type: info.type,
                                          fileOffset: dataOffset + Int(info.offset), byteCount: bytes))
        }
        // No two tensors may share bytes.
        let byOffset = tensors.sorted { $0.fileOffset < $1.fileOffset }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where a.fileOffset + a.byteCount > b.fileOffset {
            throw fail("tensors '\(a.name)' and '\(b.name)' overlap in the data section")
        }
        return Parsed(version: version, metadata: metadata, tensors: tensors, alignment: alignment, dataOffset: dataOffset)
    }
}
