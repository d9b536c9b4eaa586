import Foundation
import Testing
import CHDF5
import CKernels
import GreenPrune

@Suite struct HDF5Tests {
    @Test func roundTripThroughLibHDF5() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-h5-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.h5")
        let w = try HDF5Writer(url: url)
        try w.write("docs/loglik", [1.5, -2.25, 3.0, 4.0, 5.0, 6.0] as [Float], shape: [2, 3])
        try w.write("timing/seconds", [0.5, 0.25] as [Double], shape: [2])
        try w.setAttribute("/", "model", "smollm2")
        // Not visible until closed: an interrupted writer leaves nothing complete-looking.
        #expect(!FileManager.default.fileExists(atPath: url.path))
        try w.close()
        let r = try HDF5Reader(url: url)
        #expect(try r.shape("/docs/loglik") == [2, 3])
        #expect(try r.readDoubles("/docs/loglik") == [1.5, -2.25, 3.0, 4.0, 5.0, 6.0])
        #expect(try r.readDoubles("/timing/seconds") == [0.5, 0.25])
        #expect(try r.stringAttribute("/", "model") == "smollm2")
    }

    /// Listing and float reads: every dataset under the groups (written ones, in name order),
    /// float64 read back as float32, an integer dataset refused by `readFloats`, headers checked.
    @Test func datasetsAreListedAndReadAsFloats() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gp-h5-\(UUID().uuidString).h5")
        defer { try? FileManager.default.removeItem(at: url) }
        let w = try HDF5Writer(url: url)
        try w.write("b/k:0", [0.5, -1.25] as [Double], shape: [2, 1])
        try w.write("a/x/y/w:0", [1, 2, 3] as [Float], shape: [3])
        try w.write("a/n", [7, 8] as [Int32], shape: [2])
        try w.close()
        let r = try HDF5Reader(url: url)
        #expect(try r.datasetPaths() == ["/a/n", "/a/x/y/w:0", "/b/k:0"])
        let k = try r.datasetInfo("/b/k:0")
        #expect(k.shape == [2, 1] && k.elementCount == 2 && k.typeClass == .float && k.elementSize == 8)
        #expect(k.storedBytes == 16 && k.isPlainStorage)
        #expect(try r.datasetInfo("/a/n").typeClass == .integer)
        var out = [Float](repeating: 0, count: 2)
        try out.withUnsafeMutableBufferPointer { try r.readFloats("/b/k:0", into: $0.baseAddress!, count: 2) }
        #expect(out == [0.5, -1.25])
        #expect(throws: InputError.self) {
            try out.withUnsafeMutableBufferPointer { try r.readFloats("/a/n", into: $0.baseAddress!, count: 2) }
        }
        #expect(throws: InputError.self) {
            try out.withUnsafeMutableBufferPointer { try r.readFloats("/a/x/y/w:0", into: $0.baseAddress!, count: 2) }
        }
    }

    /// A file that is not HDF5 and one cut short are told apart in the one-line error.
    @Test func notHDF5AndTruncatedAreNamed() throws {
        let files = ["good", "cut", "text"].map { FileManager.default.temporaryDirectory.appendingPathComponent("gp-h5-\($0)-\(UUID().uuidString).h5") }
        defer { for u in files { try? FileManager.default.removeItem(at: u) } }
        let good = files[0], cut = files[1], text = files[2]
        let w = try HDF5Writer(url: good)
        try w.write("x", [Float](repeating: 1, count: 4096), shape: [4096])
        try w.close()
        let bytes = try Data(contentsOf: good)
        try bytes.prefix(bytes.count / 2).write(to: cut)
        try Data("not hdf5".utf8).write(to: text)
        #expect(throws: InputError(cut.path, "damaged or truncated HDF5 file: the superblock puts its end at byte \(bytes.count), "
                                   + "the file has \(bytes.count / 2) bytes")) { _ = try HDF5Reader(url: cut) }
        #expect(throws: InputError(text.path, "not an HDF5 file (no HDF5 signature)")) { _ = try HDF5Reader(url: text) }
    }

    /// The superblock is checked before libhdf5 sees the file (HDF5Superblock): an impossible
    /// version or field size is refused in one line; a user block before the signature is not.
    @Test func superblockIsCheckedBeforeLibhdf5() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-h5-sb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.h5")
        let w = try HDF5Writer(url: good)
        try w.write("x", [Float](repeating: 1, count: 16), shape: [16])
        try w.close()
        let bytes = try Data(contentsOf: good)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])
        let version = Int(bytes[8])
        // The size of offsets: byte 13 in versions 0 and 1, byte 9 in 2 and 3 (the file format specification).
        let sizeByte = version <= 1 ? 13 : 9
        #expect(bytes[sizeByte] == 8)
        func edited(_ name: String, _ edit: (inout Data) -> Void) throws -> URL {
            var d = bytes
            edit(&d)
            let u = dir.appendingPathComponent(name)
            try d.write(to: u)
            return u
        }
        let badVersion = try edited("version.h5") { $0[8] = 9 }
        #expect(throws: InputError(badVersion.path, "damaged or truncated HDF5 file: superblock version 9, expected 0 to 3")) {
            _ = try HDF5Reader(url: badVersion)
        }
        let badSize = try edited("size.h5") { $0[sizeByte] = 3 }
        #expect(throws: InputError.self) { _ = try HDF5Reader(url: badSize) }
        do { _ = try HDF5Reader(url: badSize) } catch let e as InputError { #expect(e.problem.contains("3-byte offsets"), "\(e)") }
        let head = try edited("head.h5") { $0 = $0.prefix(20) }
        #expect(throws: InputError(head.path, "damaged or truncated HDF5 file: the superblock is cut off")) { _ = try HDF5Reader(url: head) }
        // libhdf5 reads a file after a 512-byte user block (its base address then says so);
        // the check finds the signature there too.
        let signatureOnly = try edited("late.h5") { $0 = Data(count: 512) + $0.prefix(40) }
        #expect(throws: InputError.self) { _ = try HDF5Reader(url: signatureOnly) }
        do { _ = try HDF5Reader(url: signatureOnly) } catch let e as InputError { #expect(!e.problem.contains("no HDF5 signature"), "\(e)") }
        #expect(try HDF5Reader(url: good).readDoubles("x") == [Double](repeating: 1, count: 16))
    }

    @Test func shapeMismatchIsAnError() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gp-h5-\(UUID().uuidString).h5")
        let w = try HDF5Writer(url: url)
        #expect(throws: InputError.self) { try w.write("x", [1, 2, 3] as [Float], shape: [2, 2]) }
    }
}

/// The run-time loader (CKernels' gp_hdf5.h) against the real <hdf5.h>, which this test target
/// links through the CHDF5 system-library target.
@Suite struct HDF5LoaderTests {
    @Test func constantsAndTypesMatchTheHeader() throws {
        try HDF5Library.load(for: URL(fileURLWithPath: "test.h5"))
        #expect(MemoryLayout<gp_hid_t>.size == MemoryLayout<hid_t>.size)
        #expect(MemoryLayout<gp_hsize_t>.size == MemoryLayout<hsize_t>.size)
        #expect(MemoryLayout<gp_herr_t>.size == MemoryLayout<herr_t>.size)
        #expect(gp_hid_t(GP_H5P_DEFAULT) == chdf5_p_default())
        #expect(gp_hid_t(GP_H5S_ALL) == chdf5_s_all())
        #expect(Int32(GP_H5S_SCALAR) == chdf5_s_scalar())
        #expect(UInt32(GP_H5F_ACC_TRUNC) == chdf5_acc_trunc())
        #expect(UInt32(GP_H5F_ACC_RDONLY) == chdf5_acc_rdonly())
        // dlopen hands back the library this binary already links, so the ids are the same.
        #expect(gp_h5t_native_float() == chdf5_native_float())
        #expect(gp_h5t_native_double() == chdf5_native_double())
        #expect(gp_h5t_native_int32() == chdf5_native_int32())
        #expect(gp_h5t_native_int64() == chdf5_native_int64())
        #expect(gp_h5t_c_s1() == chdf5_c_s1())
        // What the checkpoint reader lists and checks with.
        #expect(Int32(GP_H5T_INTEGER) == chdf5_t_integer() && Int32(GP_H5T_FLOAT) == chdf5_t_float())
        #expect(Int32(GP_H5I_GROUP) == chdf5_i_group() && Int32(GP_H5I_DATASET) == chdf5_i_dataset())
        #expect(Int32(GP_H5L_TYPE_HARD) == chdf5_l_type_hard())
        #expect(Int32(GP_H5D_COMPACT) == chdf5_d_compact() && Int32(GP_H5D_CONTIGUOUS) == chdf5_d_contiguous())
        #expect(Int32(GP_H5_INDEX_NAME) == chdf5_index_name() && Int32(GP_H5_ITER_INC) == chdf5_iter_inc())
        #expect(MemoryLayout<gp_h5g_info_t>.size == chdf5_g_info_size())
        #expect(MemoryLayout<gp_h5g_info_t>.offset(of: \gp_h5g_info_t.nlinks) == chdf5_g_info_nlinks_offset())
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        H5get_libversion(&major, &minor, &release)
        #expect(HDF5Library.version?.hasPrefix("\(major).\(minor).\(release) (") == true)
    }

    @Test func filesReadBackThroughTheLinkedLibrary() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gp-h5-\(UUID().uuidString).h5")
        defer { try? FileManager.default.removeItem(at: url) }
        let w = try HDF5Writer(url: url)
        try w.write("a/b/x", [1, -2, 3, 4, 5, 6] as [Int32], shape: [3, 2])
        try w.setAttribute("/a", "unit", "joules")
        try w.close()
        let f = H5Fopen(url.path, chdf5_acc_rdonly(), chdf5_p_default())
        #expect(f >= 0)
        defer { H5Fclose(f) }
        let ds = H5Dopen2(f, "/a/b/x", chdf5_p_default())
        #expect(ds >= 0)
        defer { H5Dclose(ds) }
        let space = H5Dget_space(ds)
        defer { H5Sclose(space) }
        var dims = [hsize_t](repeating: 0, count: 2)
        #expect(H5Sget_simple_extent_ndims(space) == 2)
        H5Sget_simple_extent_dims(space, &dims, nil)
        #expect(dims == [3, 2])
        var values = [Int64](repeating: 0, count: 6)
        #expect(H5Dread(ds, chdf5_native_int64(), chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), &values) >= 0)
        #expect(values == [1, -2, 3, 4, 5, 6])
        let group = H5Oopen(f, "/a", chdf5_p_default())
        defer { H5Oclose(group) }
        #expect(H5Aexists(group, "unit") > 0)
    }

    @Test func aMissingLibraryIsAnErrorNamingTheFile() throws {
        // The loader runs once per process, so a bad GREENPRUNE_HDF5 is tried in a child: the CLI.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-h5-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = Process()
        p.executableURL = try CLIBinary.url()
        p.arguments = ["energy", "--output-dir", dir.path, "--", "/bin/true"]
        var env = ProcessInfo.processInfo.environment
        env["GREENPRUNE_HDF5"] = "/nonexistent/libhdf5.so"
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus != 0)
        #expect(text.contains("GREENPRUNE_HDF5=/nonexistent/libhdf5.so cannot be loaded"))
        #expect(text.contains("power.h5"))
        // Checked before the command ran: no energy.json or emissions row for a run without power.h5.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
