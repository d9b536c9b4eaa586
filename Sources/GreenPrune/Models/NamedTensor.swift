import Foundation

/// One tensor of a model as a writer sees it: its checkpoint name, its shape, and a view of the
/// model's storage (mapped or owned float32, or a `HalfLinear`'s bf16/f16 halves) with the rows
/// and columns it keeps. Nothing is copied until a writer asks for the values, one tensor at a
/// time, so writing a model (pruned, merged) never holds a second copy of all of it; halves
/// written as their own type are cut as halves, never widened.
public struct NamedTensor {
    /// Checkpoint name (`LlamaNames`).
    public let name: String
    /// Row-major shape after the cut: [rows, columns] for a matrix, [n] for a vector.
    public let shape: [Int]
    /// The source values: (sourceRows, sourceColumns) row-major, or a vector (sourceColumns 1).
    private let source: FloatStorage
    /// The half-precision layer whose W is the source instead (then `source` is empty).
    private let halves: HalfLinear?
    private let sourceColumns: Int
    /// Kept source rows (entries of a vector) and columns, in order; nil keeps all.
    private let rows: [Int]?
    private let columns: [Int]?
    /// In-place changes applied after the values are gathered (an adapter merged in), in order.
    private var edits: [(UnsafeMutableBufferPointer<Float>) throws -> Void] = []

    /// The whole of `storage` as a tensor of `shape` (a vector or a row-major matrix).
    public init(name: String, shape: [Int], storage: FloatStorage) {
        precondition(shape.reduce(1, *) == storage.count, "NamedTensor \(name): shape \(shape) for \(storage.count) floats")
        self.name = name
        self.shape = shape
        source = storage
        halves = nil
        sourceColumns = shape.count >= 2 ? shape[1] : 1
        rows = nil
        columns = nil
    }

    /// The weight W (out, in) of a half-precision layer (a projection, an embedding table or a
    /// head), read as float32 or as its own halves.
    public init(name: String, halves layer: HalfLinear) {
        self.name = name
        shape = [layer.outFeatures, layer.inFeatures]
        source = FloatStorage(zeros: 0)
        halves = layer
        sourceColumns = layer.inFeatures
        rows = nil
        columns = nil
    }

    private init(name: String, shape: [Int], source: FloatStorage, halves: HalfLinear?, sourceColumns: Int, rows: [Int]?,
                 columns: [Int]?, edits: [(UnsafeMutableBufferPointer<Float>) throws -> Void]) {
        self.name = name; self.shape = shape; self.source = source; self.halves = halves; self.sourceColumns = sourceColumns
        self.rows = rows; self.columns = columns; self.edits = edits
    }

    /// The storage type of the source: F32, or the half layer's BF16/F16.
    public var sourceType: DType { halves?.dtype ?? .f32 }

    /// Number of floats after the cut.
    public var count: Int { shape.reduce(1, *) }

    /// The same tensor under another name (a layer renumbered).
    public func renamed(_ newName: String) -> NamedTensor {
        NamedTensor(name: newName, shape: shape, source: source, halves: halves, sourceColumns: sourceColumns, rows: rows,
                    columns: columns, edits: edits)
    }

    /// Keeps rows `keepRows` (entries of a vector) and columns `keepColumns` of this tensor, in
    /// the order given; nil keeps all. Indices are into this tensor's current rows and columns;
    /// one out of range is an error naming the tensor.
    public func selecting(rows keepRows: [Int]?, columns keepColumns: [Int]?) throws -> NamedTensor {
        precondition(edits.isEmpty, "NamedTensor: cut before editing")
        let r = shape.first ?? 0, c = shape.count >= 2 ? shape[1] : 1
        if let k = keepRows, let bad = k.first(where: { $0 < 0 || $0 >= r }) { throw InputError(name, "kept row \(bad) out of range (\(r) rows)") }
        if let k = keepColumns {
            guard shape.count >= 2 else { throw InputError(name, "a vector has no columns to keep") }
            if let bad = k.first(where: { $0 < 0 || $0 >= c }) { throw InputError(name, "kept column \(bad) out of range (\(c) columns)") }
        }
        // Compose with an earlier cut: indices map back to the source's.
        let newRows = keepRows.map { k in rows.map { old in k.map { old[$0] } } ?? k } ?? rows
        let newColumns = keepColumns.map { k in columns.map { old in k.map { old[$0] } } ?? k } ?? columns
        var s = shape
        if let k = keepRows, !s.isEmpty { s[0] = k.count }
        if let k = keepColumns { s[1] = k.count }
        return NamedTensor(name: name, shape: s, source: source, halves: halves, sourceColumns: sourceColumns, rows: newRows,
                           columns: newColumns, edits: [])
    }

    /// The same tensor with `edit` applied in place to its values when they are produced.
    public func editing(_ edit: @escaping (UnsafeMutableBufferPointer<Float>) throws -> Void) -> NamedTensor {
        var t = self
        t.edits.append(edit)
        return t
    }

    /// Writes the values (`count` floats, row-major) into `out`.
    public func write(into out: UnsafeMutableBufferPointer<Float>) throws {
        precondition(out.count >= count, "NamedTensor \(name): buffer too small")
        guard let dst = out.baseAddress else { return }
        if let h = halves {
            writeWidened(h, into: dst)
        } else {
            gather(source.pointer, into: dst)
        }
        for edit in edits { try edit(UnsafeMutableBufferPointer(start: dst, count: count)) }
    }

    /// The kept rows and columns of a row-major (rows, `sourceColumns`) source of elements `T`
    /// into `dst`, row-major.
    private func gather<T>(_ src: UnsafePointer<T>, into dst: UnsafeMutablePointer<T>) {
        let sc = sourceColumns
        switch (rows, columns) {
        case (nil, nil):
            dst.update(from: src, count: count)
        case (let r?, nil):
            for (i, row) in r.enumerated() { (dst + i * sc).update(from: src + row * sc, count: sc) }
        case (let r, let cols?):
            let sourceRows = r ?? Array(0 ..< (sc > 0 ? sourceCount / sc : 0))
            for (i, row) in sourceRows.enumerated() {
                let s = src + row * sc, d = dst + i * cols.count
                for (j, col) in cols.enumerated() { d[j] = s[col] }
            }
        }
    }

    /// Elements of the source before the cut.
    private var sourceCount: Int { halves.map { $0.outFeatures * $0.inFeatures } ?? source.count }

    /// The kept values of a half source widened to float32 (exact): whole or row-cut tensors
    /// expand straight into `dst`, column cuts one source row at a time.
    private func writeWidened(_ h: HalfLinear, into dst: UnsafeMutablePointer<Float>) {
        let sc = sourceColumns
        switch (rows, columns) {
        case (nil, nil):
            h.expand(rows: 0 ..< h.outFeatures, into: dst)
        case (let r?, nil):
            for (i, row) in r.enumerated() { h.expand(rows: row ..< row + 1, into: dst + i * sc) }
        case (let r, let cols?):
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(sc, 1)) { line in
                for (i, row) in (r ?? Array(0 ..< h.outFeatures)).enumerated() {
                    h.expand(rows: row ..< row + 1, into: line.baseAddress!)
                    let d = dst + i * cols.count
                    for (j, col) in cols.enumerated() { d[j] = line[col] }
                }
            }
        }
    }

    /// The kept halves themselves (`count` bit patterns of `sourceType`, row-major), when the
    /// source is half precision and unedited; nil otherwise.
    public func halfBits() -> Data? {
        guard let h = halves, edits.isEmpty else { return nil }
        var data = Data(count: count * 2)
        data.withUnsafeMutableBytes { raw in
            guard let dst = raw.bindMemory(to: UInt16.self).baseAddress else { return }
            h.withHalves { gather($0, into: dst) }
        }
        return data
    }

    /// The values as storage: the source itself when the tensor is whole and unedited (no copy),
    /// otherwise owned memory holding them.
    public func storage() throws -> FloatStorage {
        if halves == nil && rows == nil && edits.isEmpty && columns == nil { return source }
        let out = FloatStorage(zeros: count)
        if let p = out.mutablePointer { try write(into: UnsafeMutableBufferPointer(start: p, count: count)) }
        return out
    }

    /// A (out, in) weight as a projection that runs, with `bias` (out floats): float32 values in a
    /// `DenseLinear` (sharing the source when whole, as `storage()`); half values stay halves in
    /// a `HalfLinear`: the source layer itself when whole with the same bias, else the kept
    /// halves copied into a layer of their own.
    public func linear(bias: FloatStorage?) throws -> any LinearLayer {
        guard shape.count == 2 else { throw InputError(name, "is not a matrix of a projection") }
        guard let h = halves, edits.isEmpty else {
            return DenseLinear(weight: try storage(), bias: bias, outFeatures: shape[0], inFeatures: shape[1])
        }
        if rows == nil && columns == nil && bias === h.bias { return h }
        guard let bits = halfBits() else { throw InputError(name, "has no half-precision values") }
        return try bits.withUnsafeBytes {
            try HalfLinear(dtype: h.dtype, bytes: $0, mapping: nil, bias: bias, outFeatures: shape[0], inFeatures: shape[1])
        }
    }

    /// The values as an array.
    public func values() throws -> [Float] {
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { try write(into: $0) }
        return out
    }

    /// A float32 safetensors entry whose bytes are gathered when the writer reaches it.
    public var entry: SafeTensorsEntry { entry(as: .f32) }

    /// A safetensors entry stored as `dtype` (F32, or BF16/F16 rounded to nearest even), its
    /// bytes gathered when the writer reaches it (a half source stored as its own type: its
    /// halves cut directly, 2 bytes per value in memory).
    public func entry(as dtype: DType) -> SafeTensorsEntry {
        if dtype == sourceType, halves != nil, edits.isEmpty {
            return SafeTensorsEntry(name: name, dtype: dtype, shape: shape) { halfBits() ?? Data() }
        }
        guard dtype == .f32 else {
            return SafeTensorsEntry(name: name, dtype: dtype, shape: shape) {
                let n = count
                let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(n, 1))
                defer { floats.deallocate() }
                try write(into: floats)
                var data = Data(count: n * 2)
                data.withUnsafeMutableBytes { roundToHalf(floats.baseAddress!, count: n, dtype: dtype, into: $0.bindMemory(to: UInt16.self).baseAddress!) }
                return data
            }
        }
        return SafeTensorsEntry(name: name, dtype: .f32, shape: shape) {
            #if _endian(little)
            var data = Data(count: count * MemoryLayout<Float>.size)
            try data.withUnsafeMutableBytes { try write(into: $0.bindMemory(to: Float.self)) }
            return data
            #else
            return try SafeTensorsWriter.encode(try values(), as: .f32)
            #endif
        }
    }
}
