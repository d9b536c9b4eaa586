import CKernels
import Foundation

/// libhdf5, loaded on first use (see CKernels' gp_hdf5.h: the binary does not link it).
public enum HDF5Library {
    /// Loads libhdf5, or throws an error naming `url` (the file that needed it) and the reason.
    public static func load(for url: URL) throws {
        var err = [CChar](repeating: 0, count: 512)
        guard gp_h5_load(&err, err.count) != 0 else {
            throw InputError(url.path, String(cString: err))
        }
    }

    /// "1.10.8 (libhdf5_serial.so.103)" once loaded, nil when libhdf5 cannot be loaded.
    public static var version: String? {
        gp_h5_load(nil, 0) != 0 ? "\(String(cString: gp_h5_version())) (\(String(cString: gp_h5_library())))" : nil
    }
}

private let h5Default = gp_hid_t(GP_H5P_DEFAULT)
private let h5All = gp_hid_t(GP_H5S_ALL)

/// A small writer (and reader, for tests and tools) over libhdf5 for the arrays a user analyses
/// later: evaluation traces, power samples, importance scores.
///
/// Datasets are written whole, row-major, with the shape given; groups are created on demand
/// from slash-separated paths ("layers/5/mlp"). Attributes are strings or scalars. The file is
/// written under a temporary name and renamed into place by `close()`, so an interrupted run
/// never leaves a complete-looking `trace.h5`.
public final class HDF5Writer {
    private var file: gp_hid_t
    private let tmpURL: URL
    public let url: URL
    private var closed = false

    /// Creates (truncates) an HDF5 file that appears at `url` when `close()` succeeds.
    public init(url: URL) throws {
        try HDF5Library.load(for: url)
        self.url = url
        self.tmpURL = AtomicFile.temporarySibling(of: url)
        file = gp_H5Fcreate(tmpURL.path, UInt32(GP_H5F_ACC_TRUNC), h5Default, h5Default)
        if file < 0 { throw InputError(url.path, "cannot create HDF5 file") }
    }

    deinit {
        if !closed {
            gp_H5Fclose(file)
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
        defer { gp_H5Oclose(obj) }
        let type = gp_H5Tcopy(gp_h5t_c_s1())
        defer { gp_H5Tclose(type) }
        let bytes = Array(value.utf8)
        gp_H5Tset_size(type, max(bytes.count, 1))
        let space = gp_H5Screate(Int32(GP_H5S_SCALAR))
        defer { gp_H5Sclose(space) }
        gp_H5Adelete(obj, name)
        let attr = gp_H5Acreate2(obj, name, type, space, h5Default, h5Default)
        guard attr >= 0 else { throw InputError(url.path, "cannot create attribute \(name) on \(path)") }
        defer { gp_H5Aclose(attr) }
        let padded = bytes.isEmpty ? [UInt8(0)] : bytes
        guard gp_H5Awrite(attr, type, padded) >= 0 else { throw InputError(url.path, "cannot write attribute \(name)") }
    }

    /// Sets a float64 scalar attribute on the object at `path`.
    public func setAttribute(_ path: String, _ name: String, _ value: Double) throws {
        let obj = try open(path)
        defer { gp_H5Oclose(obj) }
        let space = gp_H5Screate(Int32(GP_H5S_SCALAR))
        defer { gp_H5Sclose(space) }
        gp_H5Adelete(obj, name)
        let attr = gp_H5Acreate2(obj, name, gp_h5t_native_double(), space, h5Default, h5Default)
        guard attr >= 0 else { throw InputError(url.path, "cannot create attribute \(name) on \(path)") }
        defer { gp_H5Aclose(attr) }
        var v = value
        guard gp_H5Awrite(attr, gp_h5t_native_double(), &v) >= 0 else { throw InputError(url.path, "cannot write attribute \(name)") }
    }

    /// Flushes, closes and renames the file into place.
    public func close() throws {
        guard !closed else { return }
        closed = true
        guard gp_H5Fclose(file) >= 0 else { throw InputError(url.path, "cannot close HDF5 file") }
        try AtomicFile.commit(tmpURL, to: url)
    }

    // MARK: - internals

    private func open(_ path: String) throws -> gp_hid_t {
        let obj = gp_H5Oopen(file, path.isEmpty ? "/" : path, h5Default)
        if obj < 0 { throw InputError(url.path, "no object \(path) to set an attribute on") }
        return obj
    }

    /// Creates every missing group on the way to `path`'s parent.
    private func ensureParents(_ path: String) throws {
        let parts = path.split(separator: "/").dropLast()
        var cur = ""
        for p in parts {
            cur += "/" + p
            if gp_H5Lexists(file, cur, h5Default) > 0 { continue }
            let g = gp_H5Gcreate2(file, cur, h5Default, h5Default, h5Default)
            guard g >= 0 else { throw InputError(url.path, "cannot create group \(cur)") }
            gp_H5Gclose(g)
        }
    }

    private func writeRaw<T>(_ path: String, _ values: [T], shape: [Int], type: gp_hid_t) throws {
        let count = shape.reduce(1, *)
        guard count == values.count else {
            throw InputError(url.path, "dataset \(path): shape \(shape) holds \(count) values, got \(values.count)")
        }
        try ensureParents(path)
        var dims = shape.map { gp_hsize_t($0) }
        let space = gp_H5Screate_simple(Int32(dims.count), &dims, nil)
        guard space >= 0 else { throw InputError(url.path, "dataset \(path): bad shape \(shape)") }
        defer { gp_H5Sclose(space) }
        let full = path.hasPrefix("/") ? path : "/" + path
        let ds = gp_H5Dcreate2(file, full, type, space, h5Default, h5Default, h5Default)
        guard ds >= 0 else { throw InputError(url.path, "cannot create dataset \(path) (exists already?)") }
        defer { gp_H5Dclose(ds) }
        let status = values.withUnsafeBytes { gp_H5Dwrite(ds, type, h5All, h5All, h5Default, $0.baseAddress) }
        guard status >= 0 else { throw InputError(url.path, "cannot write dataset \(path)") }
    }
}

/// Reads datasets back (tests, `report` reading traces).
public final class HDF5Reader {
    private let file: gp_hid_t
    public let url: URL

    public init(url: URL) throws {
        // stat first: libhdf5 would block opening a FIFO.
        try RegularFile.check(url)
        // What can be checked without libhdf5 is: a file that is not HDF5 never reaches it.
        try HDF5Superblock.check(url)
        try HDF5Library.load(for: url)
        self.url = url
        file = gp_H5Fopen(url.path, UInt32(GP_H5F_ACC_RDONLY), h5Default)
        if file < 0 { throw InputError(url.path, "damaged or truncated HDF5 file: libhdf5 cannot open it") }
    }

    deinit { gp_H5Fclose(file) }

    /// The shape of the dataset at `path`.
    public func shape(_ path: String) throws -> [Int] {
        let ds = gp_H5Dopen2(file, path, h5Default)
        guard ds >= 0 else { throw InputError(url.path, "no dataset \(path)") }
        defer { gp_H5Dclose(ds) }
        return try shape(of: ds, path)
    }

    private func shape(of ds: gp_hid_t, _ path: String) throws -> [Int] {
        let space = gp_H5Dget_space(ds)
        guard space >= 0 else { throw InputError(url.path, "dataset \(path): unreadable dataspace") }
        defer { gp_H5Sclose(space) }
        let rank = Int(gp_H5Sget_simple_extent_ndims(space))
        guard rank >= 0, rank <= HDF5Reader.maxRank else {
            throw InputError(url.path, "dataset \(path): rank \(rank) is not between 0 and \(HDF5Reader.maxRank)")
        }
        var dims = [gp_hsize_t](repeating: 0, count: max(rank, 1))
        guard gp_H5Sget_simple_extent_dims(space, &dims, nil) >= 0 else { throw InputError(url.path, "dataset \(path): unreadable dimensions") }
        guard dims.allSatisfy({ $0 <= gp_hsize_t(Int.max) }) else { throw InputError(url.path, "dataset \(path): dimensions \(dims) are too large") }
        return rank == 0 ? [] : dims.prefix(rank).map { Int($0) }
    }

    /// The largest rank `shape` accepts (HDF5's own limit).
    static let maxRank = 32

    /// Reads the dataset at `path` converted to float64.
    public func readDoubles(_ path: String) throws -> [Double] {
        let n = try shape(path).reduce(1, *)
        let ds = gp_H5Dopen2(file, path, h5Default)
        guard ds >= 0 else { throw InputError(url.path, "no dataset \(path)") }
        defer { gp_H5Dclose(ds) }
        var out = [Double](repeating: 0, count: n)
        let status = out.withUnsafeMutableBytes { gp_H5Dread(ds, gp_h5t_native_double(), h5All, h5All, h5Default, $0.baseAddress) }
        guard status >= 0 else { throw InputError(url.path, "cannot read dataset \(path)") }
        return out
    }

    /// Reads a string attribute of the object at `path`.
    public func stringAttribute(_ path: String, _ name: String) throws -> String {
        let obj = gp_H5Oopen(file, path, h5Default)
        guard obj >= 0 else { throw InputError(url.path, "no object \(path)") }
        defer { gp_H5Oclose(obj) }
        let attr = gp_H5Aopen(obj, name, h5Default)
        guard attr >= 0 else { throw InputError(url.path, "no attribute \(name) on \(path)") }
        defer { gp_H5Aclose(attr) }
        let type = gp_H5Aget_type(attr)
        defer { gp_H5Tclose(type) }
        let size = gp_H5Tget_size(type)
        var buf = [UInt8](repeating: 0, count: size + 1)
        guard gp_H5Aread(attr, type, &buf) >= 0 else { throw InputError(url.path, "cannot read attribute \(name)") }
        return String(decoding: buf.prefix { $0 != 0 }, as: UTF8.self)
    }

    // MARK: - listing and float datasets (model checkpoints)

    /// The paths ("/group/sub/name") of every dataset reachable from the root group through hard
    /// links, depth first in name order. Soft and external links are not followed (an external
    /// link would open another file). At most `limit` links are visited and groups nest at most
    /// 64 deep, so a hard-link cycle is an error rather than endless recursion.
    public func datasetPaths(limit: Int = 1_000_000) throws -> [String] {
        var out: [String] = []
        var visited = 0
        func walk(_ group: String, depth: Int) throws {
            guard depth <= 64 else { throw InputError(url.path, "groups nest more than 64 deep at \(group)") }
            let g = gp_H5Oopen(file, group, h5Default)
            guard g >= 0 else { throw InputError(url.path, "cannot open group \(group)") }
            defer { gp_H5Oclose(g) }
            var info = gp_h5g_info_t()
            guard gp_H5Gget_info(g, &info) >= 0 else { throw InputError(url.path, "cannot list group \(group)") }
            for i in 0..<info.nlinks {
                visited += 1
                guard visited <= limit else { throw InputError(url.path, "more than \(limit) links") }
                let order = Int32(GP_H5_INDEX_NAME), inc = Int32(GP_H5_ITER_INC)
                let n = gp_H5Lget_name_by_idx(g, ".", order, inc, i, nil, 0, h5Default)
                guard n > 0, n < 65_536 else { throw InputError(url.path, "unreadable link name in group \(group)") }
                var buf = [CChar](repeating: 0, count: n + 1)
                guard gp_H5Lget_name_by_idx(g, ".", order, inc, i, &buf, buf.count, h5Default) == n else {
                    throw InputError(url.path, "unreadable link name in group \(group)")
                }
                let name = String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                guard gp_H5Lget_type(g, name) == Int32(GP_H5L_TYPE_HARD) else { continue }
                let path = (group == "/" ? "" : group) + "/" + name
                let obj = gp_H5Oopen(g, name, h5Default)
                guard obj >= 0 else { throw InputError(url.path, "cannot open \(path)") }
                let type = gp_H5Iget_type(obj)
                gp_H5Oclose(obj)
                if type == Int32(GP_H5I_GROUP) { try walk(path, depth: depth + 1) }
                else if type == Int32(GP_H5I_DATASET) { out.append(path) }
            }
        }
        try walk("/", depth: 0)
        return out
    }

    /// The header of the dataset at `path`, read before any of its data.
    public func datasetInfo(_ path: String) throws -> HDF5DatasetInfo {
        let ds = gp_H5Dopen2(file, path, h5Default)
        guard ds >= 0 else { throw InputError(url.path, "no dataset \(path)") }
        defer { gp_H5Dclose(ds) }
        let shape = try shape(of: ds, path)
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw InputError(url.path, "dataset \(path): shape \(shape) is too large") }
            count = p
        }
        let type = gp_H5Dget_type(ds)
        guard type >= 0 else { throw InputError(url.path, "dataset \(path): unreadable element type") }
        defer { gp_H5Tclose(type) }
        let typeClass: HDF5DatasetInfo.TypeClass
        switch gp_H5Tget_class(type) {
        case Int32(GP_H5T_FLOAT): typeClass = .float
        case Int32(GP_H5T_INTEGER): typeClass = .integer
        default: typeClass = .other
        }
        let plist = gp_H5Dget_create_plist(ds)
        guard plist >= 0 else { throw InputError(url.path, "dataset \(path): unreadable creation properties") }
        defer { gp_H5Pclose(plist) }
        let layout = gp_H5Pget_layout(plist)
        let inFile = (layout == Int32(GP_H5D_CONTIGUOUS) || layout == Int32(GP_H5D_COMPACT)) && gp_H5Pget_external_count(plist) == 0
        return HDF5DatasetInfo(shape: shape, elementCount: count, typeClass: typeClass,
                               elementSize: gp_H5Tget_size(type),
                               storedBytes: Int(clamping: gp_H5Dget_storage_size(ds)), isPlainStorage: inFile)
    }

    /// Reads the floating-point dataset at `path` (any float width; libhdf5 converts) as float32
    /// into `out`, which holds `count` values, the dataset's element count.
    public func readFloats(_ path: String, into out: UnsafeMutablePointer<Float>, count: Int) throws {
        let info = try datasetInfo(path)
        guard info.typeClass == .float else { throw InputError(url.path, "dataset \(path) is \(info.typeClass), expected floating point") }
        guard info.elementCount == count else {
            throw InputError(url.path, "dataset \(path) holds \(info.elementCount) values, expected \(count)")
        }
        let ds = gp_H5Dopen2(file, path, h5Default)
        guard ds >= 0 else { throw InputError(url.path, "no dataset \(path)") }
        defer { gp_H5Dclose(ds) }
        guard count == 0 || gp_H5Dread(ds, gp_h5t_native_float(), h5All, h5All, h5Default, out) >= 0 else {
            throw InputError(url.path, "cannot read dataset \(path)")
        }
    }
}

/// A dataset's header: what `HDF5Reader.datasetInfo` reads before any data.
public struct HDF5DatasetInfo: Sendable, Equatable {
    /// The class of the element type (HDF5's H5T_class_t, the classes a reader tells apart).
    public enum TypeClass: String, Sendable, Equatable, CustomStringConvertible {
        case float = "floating point", integer, other = "neither integer nor floating point"
        public var description: String { rawValue }
    }
    /// Dimensions, outermost first.
    public var shape: [Int]
    /// product(shape), checked for overflow.
    public var elementCount: Int
    public var typeClass: TypeClass
    /// Bytes per element in the file.
    public var elementSize: Int
    /// Bytes the file holds for the data (0 when it was never written).
    public var storedBytes: Int
    /// The data lies in this file, contiguous or inside the header (not chunked or filtered,
    /// virtual, or in external files).
    public var isPlainStorage: Bool
}
