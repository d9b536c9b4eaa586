import CHDF5
import Foundation

/// A small writer (and reader, for tests and tools) over libhdf5 for the arrays a user analyses
/// later: evaluation traces, power samples, importance scores.
///
/// Datasets are written whole, row-major, with the shape given; groups are created on demand
/// from slash-separated paths ("layers/5/mlp"). Attributes are strings or scalars. The file is
/// written under a temporary name and renamed into place by `close()`, so an interrupted run
/// never leaves a complete-looking `trace.h5`.
public final class HDF5Writer {
    private var file: hid_t
    private let tmpURL: URL
    public let url: URL
    private var closed = false

    /// Creates (truncates) an HDF5 file that appears at `url` when `close()` succeeds.
    public init(url: URL) throws {
        gp_h5_silence_errors()
        self.url = url
        self.tmpURL = AtomicFile.temporarySibling(of: url)
        file = H5Fcreate(tmpURL.path, gp_h5f_acc_trunc(), gp_h5p_default(), gp_h5p_default())
        if file < 0 { throw InputError(url.path, "cannot create HDF5 file") }
    }

    deinit {
        if !closed {
            H5Fclose(file)
            try? FileManager.default.removeItem(at: tmpURL)
        }
    }

    /// Writes float32 `values` with `shape` at `path` ("group/sub/name").
    public func write(_ path: String, _ values: [Float], shape: [Int]) throws {
        try writeRaw(path, values, shape: shape, type: gp_h5t_native_float())
    }

    /// Writes float64 `values` with `shape` at `path`.
    public func write(_ path: String, _ values: [Double], shape: [Int]) throws {
        try writeRaw(path, values, shape: shape, type: gp_h5t_native_double())
    }

    /// Writes int64 `values` with `shape` at `path`.
    public func write(_ path: String, _ values: [Int64], shape: [Int]) throws {
        try writeRaw(path, values, shape: shape, type: gp_h5t_native_int64())
    }

    /// Writes int32 `values` with `shape` at `path`.
    public func write(_ path: String, _ values: [Int32], shape: [Int]) throws {
        try writeRaw(path, values, shape: shape, type: gp_h5t_native_int32())
    }

    /// Sets a string attribute on the object at `path` ("/" for the file's root group).
    public func setAttribute(_ path: String, _ name: String, _ value: String) throws {
        let obj = try open(path)
        defer { H5Oclose(obj) }
        let type = H5Tcopy(gp_h5t_c_s1())
        defer { H5Tclose(type) }
        let bytes = Array(value.utf8)
        H5Tset_size(type, max(bytes.count, 1))
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        H5Adelete(obj, name)
        let attr = H5Acreate2(obj, name, type, space, gp_h5p_default(), gp_h5p_default())
        guard attr >= 0 else { throw InputError(url.path, "cannot create attribute \(name) on \(path)") }
        defer { H5Aclose(attr) }
        let padded = bytes.isEmpty ? [UInt8(0)] : bytes
        guard H5Awrite(attr, type, padded) >= 0 else { throw InputError(url.path, "cannot write attribute \(name)") }
    }

    /// Sets a float64 scalar attribute on the object at `path`.
    public func setAttribute(_ path: String, _ name: String, _ value: Double) throws {
        let obj = try open(path)
        defer { H5Oclose(obj) }
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        H5Adelete(obj, name)
        let attr = H5Acreate2(obj, name, gp_h5t_native_double(), space, gp_h5p_default(), gp_h5p_default())
        guard attr >= 0 else { throw InputError(url.path, "cannot create attribute \(name) on \(path)") }
        defer { H5Aclose(attr) }
        var v = value
        guard H5Awrite(attr, gp_h5t_native_double(), &v) >= 0 else { throw InputError(url.path, "cannot write attribute \(name)") }
    }

    /// Flushes, closes and renames the file into place.
    public func close() throws {
        guard !closed else { return }
        closed = true
        guard H5Fclose(file) >= 0 else { throw InputError(url.path, "cannot close HDF5 file") }
        try AtomicFile.commit(tmpURL, to: url)
    }

    // MARK: - internals

    private func open(_ path: String) throws -> hid_t {
        let obj = H5Oopen(file, path.isEmpty ? "/" : path, gp_h5p_default())
        if obj < 0 { throw InputError(url.path, "no object \(path) to set an attribute on") }
        return obj
    }

    /// Creates every missing group on the way to `path`'s parent.
    private func ensureParents(_ path: String) throws {
        let parts = path.split(separator: "/").dropLast()
        var cur = ""
        for p in parts {
            cur += "/" + p
            if H5Lexists(file, cur, gp_h5p_default()) > 0 { continue }
            let g = H5Gcreate2(file, cur, gp_h5p_default(), gp_h5p_default(), gp_h5p_default())
            guard g >= 0 else { throw InputError(url.path, "cannot create group \(cur)") }
            H5Gclose(g)
        }
    }

    private func writeRaw<T>(_ path: String, _ values: [T], shape: [Int], type: hid_t) throws {
        let count = shape.reduce(1, *)
        guard count == values.count else {
            throw InputError(url.path, "dataset \(path): shape \(shape) holds \(count) values, got \(values.count)")
        }
        try ensureParents(path)
        var dims = shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), &dims, nil)
        guard space >= 0 else { throw InputError(url.path, "dataset \(path): bad shape \(shape)") }
        defer { H5Sclose(space) }
        let full = path.hasPrefix("/") ? path : "/" + path
        let ds = H5Dcreate2(file, full, type, space, gp_h5p_default(), gp_h5p_default(), gp_h5p_default())
        guard ds >= 0 else { throw InputError(url.path, "cannot create dataset \(path) (exists already?)") }
        defer { H5Dclose(ds) }
        let status = values.withUnsafeBytes { H5Dwrite(ds, type, gp_h5s_all(), gp_h5s_all(), gp_h5p_default(), $0.baseAddress) }
        guard status >= 0 else { throw InputError(url.path, "cannot write dataset \(path)") }
    }
}

/// Reads datasets back (tests, `report` reading traces).
public final class HDF5Reader {
    private let file: hid_t
    public let url: URL

    public init(url: URL) throws {
        gp_h5_silence_errors()
        self.url = url
        file = H5Fopen(url.path, gp_h5f_acc_rdonly(), gp_h5p_default())
        if file < 0 { throw InputError(url.path, "not a readable HDF5 file") }
    }

    deinit { H5Fclose(file) }

    /// The shape of the dataset at `path`.
    public func shape(_ path: String) throws -> [Int] {
        let ds = H5Dopen2(file, path, gp_h5p_default())
        guard ds >= 0 else { throw InputError(url.path, "no dataset \(path)") }
        defer { H5Dclose(ds) }
        let space = H5Dget_space(ds)
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        H5Sget_simple_extent_dims(space, &dims, nil)
        return rank == 0 ? [] : dims.prefix(rank).map { Int($0) }
    }

    /// Reads the dataset at `path` converted to float64.
    public func readDoubles(_ path: String) throws -> [Double] {
        let n = try shape(path).reduce(1, *)
        let ds = H5Dopen2(file, path, gp_h5p_default())
        guard ds >= 0 else { throw InputError(url.path, "no dataset \(path)") }
        defer { H5Dclose(ds) }
        var out = [Double](repeating: 0, count: n)
        let status = out.withUnsafeMutableBytes { H5Dread(ds, gp_h5t_native_double(), gp_h5s_all(), gp_h5s_all(), gp_h5p_default(), $0.baseAddress) }
        guard status >= 0 else { throw InputError(url.path, "cannot read dataset \(path)") }
        return out
    }

    /// Reads a string attribute of the object at `path`.
    public func stringAttribute(_ path: String, _ name: String) throws -> String {
        let obj = H5Oopen(file, path, gp_h5p_default())
        guard obj >= 0 else { throw InputError(url.path, "no object \(path)") }
        defer { H5Oclose(obj) }
        let attr = H5Aopen(obj, name, gp_h5p_default())
        guard attr >= 0 else { throw InputError(url.path, "no attribute \(name) on \(path)") }
        defer { H5Aclose(attr) }
        let type = H5Aget_type(attr)
        defer { H5Tclose(type) }
        let size = H5Tget_size(type)
        var buf = [UInt8](repeating: 0, count: size + 1)
        guard H5Aread(attr, type, &buf) >= 0 else { throw InputError(url.path, "cannot read attribute \(name)") }
        return String(decoding: buf.prefix { $0 != 0 }, as: UTF8.self)
    }
}
