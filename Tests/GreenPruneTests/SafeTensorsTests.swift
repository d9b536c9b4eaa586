import Foundation
import Testing
import GreenPrune

/// The safetensors reader against the format's spec: valid files (single and sharded), and a
/// corpus of malformed files generated here, each giving a one-line error naming the file.
@Suite struct SafeTensorsTests {
    /// A fresh temporary directory.
    static func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("gp-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    /// Bytes of a safetensors file: u64 LE header length, the header, then `data`.
    static func file(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
        var out = Data()
        let h = Array(header.utf8)
        var n = declaredLength ?? UInt64(h.count)
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: h)
        out.append(contentsOf: data)
        return out
    }

    static func floatBytes(_ v: [Float]) -> [UInt8] { v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }

    @Test func readsF32ZeroCopyAndConvertsF16BF16() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Header padded to 8 bytes with spaces (as the Rust/Python writers do) so F32 data is aligned.
        var header = #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"h":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[20,24]},"__metadata__":{"format":"pt"}}"#
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        // F16 1.0 = 0x3C00, -2.0 = 0xC000; BF16 1.5 = 0x3FC0, -0.5 = 0xBF00.
        let data = Self.floatBytes([1, 2, 3, 4]) + [0x00, 0x3C, 0x00, 0xC0] + [0xC0, 0x3F, 0x00, 0xBF]
        let url = dir.appendingPathComponent("model.safetensors")
        try Self.file(header: header, data: data).write(to: url)
        let r = try SafeTensorsReader(dir)
        #expect(r.names == ["a", "b", "h"])
        let a = try r.floats("a", shape: [2, 2])
        #expect(a.isMapped)
        #expect(a.array == [1, 2, 3, 4])
        let h = try r.floats("h")
        #expect(!h.isMapped && h.array == [1, -2])
        #expect(try r.floats("b").array == [1.5, -0.5])
        #expect(r.files[0].metadata == ["format": "pt"])
        #expect(throws: InputError.self) { try r.floats("a", shape: [4]) }
    }

    /// Releasing a tensor's pages (after its values were copied) must not change what a later
    /// read sees: the whole pages inside it fault back in from the file; a tensor smaller than
    /// a page, or the bytes it shares with a neighbour's page, are left alone.
    @Test func releasedPagesReadBackUnchanged() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let n = 5000  // 20,000 bytes: at least three whole pages of 4 KiB
        let big = (0 ..< n).map { Float($0) * 0.5 - 7 }
        var header = #"{"s":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"big":{"dtype":"F32","shape":[\#(n)],"data_offsets":[12,\#(12 + 4 * n)]}}"#
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        let url = dir.appendingPathComponent("m.safetensors")
        try Self.file(header: header, data: Self.floatBytes([1, 2, 3]) + Self.floatBytes(big)).write(to: url)
        let f = try SafeTensorsFile(url)
        #expect(try f.floats(f.tensors["big"]!).array == big)
        f.release(f.tensors["big"]!)
        f.release(f.tensors["s"]!)
        #expect(try f.floats(f.tensors["big"]!).array == big)
        #expect(try f.floats(f.tensors["s"]!).array == [1, 2, 3])
    }

    /// Table rows gathered from a mapped tensor (pread) equal the rows in the file, and leave
    /// the table's pages out of the process: scattered reads through the mapping make most of
    /// it resident (the kernel maps the 64 KB around a touched page, or its whole large folio),
    /// pread does not. A 2 MiB tensor first keeps the table out of the header's folio.
    @Test func gatheredRowsStayOutOfResidentMemory() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let v = 32768, c = 16, pad = 1 << 19  // a 2 MiB table behind a 2 MiB tensor
        let table = (0 ..< v * c).map { Float($0 % 9973) * 0.25 - 100 }
        var header = #"{"pad":{"dtype":"F32","shape":[\#(pad)],"data_offsets":[0,\#(4 * pad)]},"t":{"dtype":"F32","shape":[\#(v),\#(c)],"data_offsets":[\#(4 * pad),\#(4 * pad + 4 * v * c)]}}"#
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        let url = dir.appendingPathComponent("rows.safetensors")
        try Self.file(header: header, data: [UInt8](repeating: 0, count: 4 * pad) + Self.floatBytes(table)).write(to: url)
        let f = try SafeTensorsFile(url)
        let t = try f.floats(f.tensors["t"]!)
        #expect(t.isMapped)
        var g = SplitMix(state: 5)
        let ids: [Int32] = [0, Int32(v - 1), 17, 17] + (0 ..< 400).map { _ in Int32(g.next() % UInt64(v)) }
        var out = [Float](repeating: .nan, count: ids.count * c)
        ids.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { t.gatherRows(i.baseAddress!, count: ids.count, width: c, into: $0.baseAddress!) } }
        for (k, id) in ids.enumerated() {
            #expect(Array(out[k * c ..< (k + 1) * c]) == Array(table[Int(id) * c ..< (Int(id) + 1) * c]))
        }
        #if os(Linux)
        let afterPread = try Self.presentPages(t.pointer, bytes: t.byteCount)
        ids.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { embeddingForward($0.baseAddress!, ids: i.baseAddress!, table: t.pointer, n: ids.count, c: c) } }
        let afterMapped = try Self.presentPages(t.pointer, bytes: t.byteCount)
        #expect(afterPread == 0, "\(afterPread) of the table's pages mapped after pread gathers")
        #expect(afterMapped >= 256, "\(afterMapped) of 512 pages mapped after mapped gathers: the check cannot tell them apart")
        #endif
    }

    /// Pages of [p, p + bytes) present in this process's page table (/proc/self/pagemap, bit 63).
    static func presentPages(_ p: UnsafePointer<Float>, bytes: Int) throws -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = Int(bitPattern: p) / page, last = (Int(bitPattern: p) + bytes - 1) / page
        guard let h = FileHandle(forReadingAtPath: "/proc/self/pagemap") else { throw InputError("/proc/self/pagemap", "cannot open") }
        defer { try? h.close() }
        try h.seek(toOffset: UInt64(first * 8))
        let data = h.readData(ofLength: (last - first + 1) * 8)
        return data.withUnsafeBytes { raw in
            (0 ..< data.count / 8).filter { raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self) >> 63 == 1 }.count
        }
    }

    @Test func unalignedF32IsCopied() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let header = #"{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}"#
        let url = dir.appendingPathComponent("m.safetensors")
        try Self.file(header: header, data: [7] + Self.floatBytes([2.5])).write(to: url)
        let f = try SafeTensorsFile(url)
        let a = try f.floats(f.tensors["a"]!)
        #expect(a.array == [2.5])
        #expect(throws: InputError.self) { try f.floats(f.tensors["x"]!) }
    }

    @Test func shardedIndex() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}    "#, data: Self.floatBytes([1]))
            .write(to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try Self.file(header: #"{"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}    "#, data: Self.floatBytes([2, 3]))
            .write(to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        let index = #"{"metadata":{"total_size":12},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#
        try Data(index.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        let r = try SafeTensorsReader(dir)
        #expect(r.names == ["a", "b"])
        #expect(r.files.count == 2)
        #expect(try r.floats("b").array == [2, 3])
        // An index naming a tensor its shard does not hold.
        let bad = #"{"weight_map":{"a":"model-00002-of-00002.safetensors"}}"#
        try Data(bad.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        let e = #expect(throws: InputError.self) { try SafeTensorsReader(dir) }
        #expect(e?.description.contains("model.safetensors.index.json") == true)
    }

    /// Malformed files: (name, bytes, words the error must contain).
    static let corpus: [(String, Data, String)] = {
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let eight = floatBytes([1, 2])
        return [
            ("empty", Data(), "truncated"),
            ("short-length", Data([1, 2, 3]), "truncated"),
            ("truncated-data", file(header: ok, data: Array(eight.prefix(5))), "outside"),
            ("header-past-end", file(header: ok, data: eight, declaredLength: 10_000), "past the end"),
            ("header-huge", file(header: ok, data: eight, declaredLength: UInt64.max), "limit"),
            ("bad-json", file(header: #"{"a": {"dtype": "F32", "#, data: eight), "not valid JSON"),
            ("not-object", file(header: "[1, 2]", data: eight), "not a JSON object"),
            ("unknown-dtype", file(header: #"{"a":{"dtype":"F8_E9","shape":[2],"data_offsets":[0,8]}}"#, data: eight), "unknown dtype"),
            ("shape-vs-bytes", file(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight), "needs 12 bytes"),
            ("out-of-range", file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: eight), "outside"),
            ("reversed", file(header: #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: eight), "outside"),
            ("negative", file(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#, data: eight), "negative"),
            ("overlap", file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight), "overlapping"),
            ("missing-offsets", file(header: #"{"a":{"dtype":"F32","shape":[2]}}"#, data: eight), "data_offsets"),
            ("huge-shape", file(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: eight), "too large"),
            ("bad-metadata", file(header: #"{"__metadata__":{"k":1}}"#, data: []), "not a string"),
        ]
    }()

    @Test(arguments: corpus.indices)
    func malformedFileGivesOneLineErrorNamingIt(_ i: Int) throws {
        let (name, bytes, words) = Self.corpus[i]
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("\(name).safetensors")
        try bytes.write(to: url)
        let e = #expect(throws: InputError.self) { try SafeTensorsReader(url) }
        let msg = e?.description ?? ""
        #expect(msg.hasPrefix(url.path + ": "), "\(name): \(msg)")
        #expect(msg.contains(words), "\(name): \(msg)")
        #expect(!msg.contains("\n"))
    }
}
