import Foundation
import Testing
import GreenPrune

/// GGUF files assembled byte by byte from the format's spec (independently of `GGUFWriter`).
fileprivate struct GGUFBytes {
    var data = Data()
    mutating func u8(_ v: UInt8) { data.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); data.append(contentsOf: Array(s.utf8)) }
    mutating func magic(_ m: String = "GGUF", version: UInt32 = 3, tensors: UInt64, kvs: UInt64) {
        data.append(contentsOf: Array(m.utf8)); u32(version); u64(tensors); u64(kvs)
    }
    mutating func kvString(_ k: String, _ v: String) { str(k); u32(8); str(v) }
    mutating func kvU32(_ k: String, _ v: UInt32) { str(k); u32(4); u32(v) }
    /// A tensor info: name, row-major shape (written reversed, as ggml's ne), type, offset.
    mutating func tensor(_ name: String, _ shape: [Int], type: UInt32, offset: UInt64) {
        str(name); u32(UInt32(shape.count)); for d in shape.reversed() { u64(UInt64(d)) }; u32(type); u64(offset)
    }
    mutating func pad(to a: Int) { while data.count % a != 0 { data.append(0) } }
}

/// A small valid GGUF v3 file: three KVs, an F32 [2, 4] tensor "a" = 0…7 and a Q8_0 [1, 32]
/// tensor "b" (d = 0.5, qs = j − 16).
fileprivate func validGGUF(alignment: UInt32? = nil) -> Data {
    var g = GGUFBytes()
    g.magic(tensors: 2, kvs: alignment == nil ? 3 : 4)
    g.kvString("general.architecture", "llama")
    g.kvU32("test.u32", 7)
    g.str("test.arr"); g.u32(9); g.u32(5); g.u64(3); g.i32(1); g.i32(-2); g.i32(3)
    if let a = alignment { g.kvU32("general.alignment", a) }
    let align = Int(alignment ?? 32)
    g.tensor("a", [2, 4], type: 0, offset: 0)
    g.tensor("b", [1, 32], type: 8, offset: UInt64(align))  // 32 bytes of "a", padded to `align`
    g.pad(to: align)
    for i in 0..<8 { g.f32(Float(i)) }
    g.pad(to: align)
    g.u8(0x00); g.u8(0x38)
    for j in 0..<32 { g.u8(UInt8(bitPattern: Int8(j - 16))) }
    return g.data
}

@Suite final class GGUFTests {
    let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-gguf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    private func file(_ name: String, _ data: Data) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try data.write(to: url)
        return url
    }

    @Test func readsAValidFile() throws {
        for alignment: UInt32? in [nil, 64] {
            let f = try GGUFFile(url: try file("valid.gguf", validGGUF(alignment: alignment)))
            #expect(f.version == 3)
            #expect(f.alignment == Int(alignment ?? 32))
            #expect(f["general.architecture"]?.string == "llama")
            #expect(f["test.u32"] == .uint32(7))
            #expect(f["test.arr"]?.array == [.int32(1), .int32(-2), .int32(3)])
            let a = try #require(f.tensor("a")), b = try #require(f.tensor("b"))
            #expect(a.shape == [2, 4] && a.type == .f32 && a.byteCount == 32)
            #expect(b.shape == [1, 32] && b.type == .q8_0 && b.byteCount == 34)
            #expect(try f.floats(a) == (0..<8).map(Float.init))
            #expect(try f.floats(b) == (0..<32).map { Float($0 - 16) * 0.5 })
        }
    }

    @Test func readsTheSmolLM2Header() throws {
        let url = Paths.home.appendingPathComponent("gguf/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: url.path) else {
            Issue.record("missing \(url.path): run scripts/fetch-models.sh"); return
        }
        let f = try GGUFFile(url: url)
        #expect(f.version == 3)
        #expect(f["general.architecture"]?.string == "llama")
        #expect(f["tokenizer.ggml.pre"]?.string == "smollm")
        // Shapes agree with the reference conversion's (transformers names, row-major).
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: Paths.referenceDirectory()
            .appendingPathComponent("smollm2-135m/tensor_stats.json"))) as? [String: [String: Any]] ?? [:]
        #expect(f.tensors.count == stats.count)
        for t in f.tensors {
            let hf = try #require(GGUFImporter.huggingFaceName(t.name))
            #expect((stats[hf]?["shape"] as? [Int]) == t.shape, "\(t.name)")
        }
    }

    // MARK: Malformed input

    /// Each case: a file and a phrase its one-line error must contain.
    fileprivate static func corpus() -> [(String, Data, String)] {
        var cases: [(String, Data, String)] = []
        let valid = validGGUF()

        var m = valid; m[3] = 0x58
        cases.append(("wrong-magic", m, "not a GGUF file"))
        cases.append(("empty", Data(), "truncated"))
        cases.append(("truncated-header", valid.prefix(14), "truncated"))

        var g = GGUFBytes(); g.magic(version: 1, tensors: 0, kvs: 0)
        cases.append(("version-1", g.data, "unsupported GGUF version 1"))
        g = GGUFBytes(); g.magic(version: 4, tensors: 0, kvs: 0)
        cases.append(("version-4", g.data, "unsupported GGUF version 4"))

        g = GGUFBytes(); g.magic(tensors: 0, kvs: 1); g.u64(1 << 40); g.data.append(Data(count: 32))
        cases.append(("huge-key-length", g.data, "string of 1099511627776 bytes"))
        g = GGUFBytes(); g.magic(tensors: 0, kvs: 1); g.str("k"); g.u32(8); g.u64(UInt64.max)
        cases.append(("huge-string-value", g.data, "string of"))
        g = GGUFBytes(); g.magic(tensors: 0, kvs: 1); g.str("k"); g.u32(8); g.u64(1000); g.data.append(contentsOf: [1, 2, 3])
        cases.append(("string-past-end", g.data, "past the end of the file"))
        g = GGUFBytes(); g.magic(tensors: 1 << 62, kvs: 0)
        cases.append(("huge-tensor-count", g.data, "tensors, more than the file can hold"))
        g = GGUFBytes(); g.magic(tensors: 0, kvs: UInt64.max)
        cases.append(("huge-kv-count", g.data, "metadata entries, more than the file can hold"))
        g = GGUFBytes(); g.magic(tensors: 0, kvs: 1); g.str("k"); g.u32(9); g.u32(4); g.u64(1 << 60)
        cases.append(("huge-array", g.data, "array of"))
        g = GGUFBytes(); g.magic(tensors: 0, kvs: 1); g.str("k"); g.u32(9); g.u32(9); g.u64(1); g.u32(4); g.u64(0)
        cases.append(("nested-array", g.data, "nested arrays"))
        g = GGUFBytes(); g.magic(tensors: 0, kvs: 1); g.str("k"); g.u32(13); g.u32(0)
        cases.append(("unknown-value-type", g.data, "unknown value type 13"))
        g = GGUFBytes(); g.magic(tensors: 0, kvs: 1); g.str("k"); g.u32(7); g.u8(2)
        cases.append(("bad-bool", g.data, "neither 0 nor 1"))
        g = GGUFBytes(); g.magic(tensors: 0, kvs: 2); g.kvU32("k", 1); g.kvU32("k", 2)
        cases.append(("duplicate-key", g.data, "duplicate metadata key 'k'"))

        for (name, a) in [("alignment-3", UInt32(3)), ("alignment-0", 0)] {
            g = GGUFBytes(); g.magic(tensors: 0, kvs: 1); g.kvU32("general.alignment", a)
            cases.append((name, g.data, "bad general.alignment \(a)"))
        }
        g = GGUFBytes(); g.magic(tensors: 0, kvs: 1); g.kvString("general.alignment", "32")
        cases.append(("alignment-string", g.data, "general.alignment must be a uint32"))

        func oneTensor(_ shape: [Int], type: UInt32, offset: UInt64, dataBytes: Int, nDims: UInt32? = nil) -> Data {
            var g = GGUFBytes(); g.magic(tensors: 1, kvs: 0)
            if let n = nDims {
                g.str("t"); g.u32(n); for _ in 0..<n { g.u64(2) }; g.u32(type); g.u64(offset)
            } else {
                g.tensor("t", shape, type: type, offset: offset)
            }
            g.pad(to: 32); g.data.append(Data(count: dataBytes))
            return g.data
        }
        cases.append(("unknown-tensor-type", oneTensor([4], type: 99, offset: 0, dataBytes: 16), "unknown ggml type 99"))
        cases.append(("data-past-end", oneTensor([2, 4], type: 0, offset: 0, dataBytes: 31), "runs past the end"))
        cases.append(("offset-past-end", oneTensor([4], type: 0, offset: 1 << 40, dataBytes: 16), "runs past the end"))
        cases.append(("offset-misaligned", oneTensor([4], type: 0, offset: 4, dataBytes: 64), "not aligned to 32"))
        cases.append(("partial-block", oneTensor([16], type: 8, offset: 0, dataBytes: 64), "not a multiple of the Q8_0 block size 32"))
        cases.append(("zero-dim", oneTensor([0, 4], type: 0, offset: 0, dataBytes: 64), "bad dimension 0"))
        cases.append(("five-dims", oneTensor([], type: 0, offset: 0, dataBytes: 256, nDims: 5), "5 dimensions"))
        cases.append(("dims-overflow", oneTensor([1 << 30, 1 << 30, 1 << 30], type: 0, offset: 0, dataBytes: 64), "element count overflows"))

        g = GGUFBytes(); g.magic(tensors: 2, kvs: 0)
        g.tensor("a", [8], type: 0, offset: 0); g.tensor("b", [8], type: 0, offset: 0)
        g.pad(to: 32); g.data.append(Data(count: 64))
        cases.append(("overlapping", g.data, "overlap"))
        g = GGUFBytes(); g.magic(tensors: 2, kvs: 0)
        g.tensor("a", [8], type: 0, offset: 0); g.tensor("a", [8], type: 0, offset: 32)
        g.pad(to: 32); g.data.append(Data(count: 64))
        cases.append(("duplicate-tensor", g.data, "duplicate tensor name 'a'"))
        return cases
    }

    @Test func malformedFilesThrowOneLineErrorsNamingFileAndProblem() throws {
        for (name, data, phrase) in Self.corpus() {
            let url = try file("\(name).gguf", data)
            do {
                _ = try GGUFFile(url: url)
                Issue.record("\(name): parsed without error")
            } catch let e as InputError {
                let text = e.description
                #expect(text.contains(url.path), "\(name): \(text)")
                #expect(text.contains(phrase), "\(name): \(text)")
                #expect(!text.contains("\n"), "\(name): \(text)")
            }
        }
    }

    @Test func everyTruncationOfAValidFileThrows() throws {
        let valid = validGGUF()
        _ = try GGUFFile(url: try file("full.gguf", valid))
        for n in 0..<valid.count {
            let url = try file("cut.gguf", valid.prefix(n))
            #expect(throws: InputError.self, "prefix of \(n) bytes") { _ = try GGUFFile(url: url) }
        }
    }

    @Test func randomByteFlipsNeverCrash() throws {
        // Parse or throw InputError; anything else (a trap) fails the whole run.
        let valid = validGGUF()
        var rng = GGUFTestRNG(seed: 42)
        var rejected = 0
        for i in 0..<400 {
            var d = valid
            for _ in 0..<(1 + i % 4) {
                d[Int(rng.next() % UInt64(d.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                let f = try GGUFFile(url: try file("flip.gguf", d))
                for t in f.tensors where t.type.canDequantize { _ = try? f.floats(t) }
            } catch is InputError {
                rejected += 1
            }
        }
        #expect(rejected > 0)
    }

    @Test func convertRejectsNonLlamaAndMissingTensors() throws {
        // validGGUF is "llama" but has no llama.* hyper-parameters.
        let url = try file("nollama.gguf", validGGUF())
        let out = dir.appendingPathComponent("out")
        #expect(throws: InputError.self) { _ = try GGUFImporter.convert(gguf: url, to: out, showProgress: false) }
        #expect(!FileManager.default.fileExists(atPath: out.path))
        // Nothing half-written is left beside it.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".out") }
        #expect(leftovers.isEmpty)
    }

    /// The built CLI exits non-zero with a one-line `Error: file: problem` on stderr.
    @Test func cliReportsMalformedFilesOnOneLine() throws {
        let exe = try CLIBinary.url()
        for (name, data, phrase) in Self.corpus() where ["wrong-magic", "huge-string-value", "data-past-end"].contains(name) {
            let url = try file("\(name).gguf", data)
            let p = Process()
            p.executableURL = exe
            p.arguments = ["convert", url.path, "--out", dir.appendingPathComponent("cli-out").path, "--quiet"]
            let err = Pipe(), out = Pipe()
            p.standardError = err; p.standardOutput = out
            try p.run()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            _ = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            #expect(p.terminationStatus != 0, "\(name)")
            let lines = stderr.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(lines.count == 1, "\(name): \(stderr)")
            #expect(stderr.contains(url.path) && stderr.contains(phrase), "\(name): \(stderr)")
        }
    }

    // MARK: Writer

    @Test func writerRoundTripsThroughTheReader() throws {
        var rng = GGUFTestRNG(seed: 3)
        let x = (0..<(4 * 64)).map { _ in Float(rng.nextDouble() * 2 - 1) }
        for alignment in [32, 64] {
            var w = try GGUFWriter(alignment: alignment)
            try w.set("general.architecture", .string("llama"))
            try w.set("test.f32", .float32(0.25))
            try w.set("test.i64", .int64(-5))
            try w.set("test.f64", .float64(1e-300))
            try w.set("test.bool", .bool(true))
            try w.set("test.strings", .array(elementType: 8, values: [.string("a b"), .string("Ġx"), .string("")]))
            #expect(throws: InputError.self) { try w.set("bad", .array(elementType: 4, values: [.string("x")])) }
            try w.addTensor(name: "f32", shape: [3], type: .f32, floats: [1, 2, 3])
            for type in [GGMLType.q8_0, .q4_0, .q4_1, .f16, .bf16] {
                try w.addTensor(name: type.name, shape: [4, 64], type: type, floats: x)
            }
            #expect(throws: InputError.self) { try w.addTensor(name: "odd", shape: [2, 16], type: .q8_0, floats: Array(x[0..<32])) }
            let url = dir.appendingPathComponent("w\(alignment).gguf")
            try w.write(to: url)

            let f = try GGUFFile(url: url)
            #expect(f.version == 3 && f.alignment == alignment)
            #expect(f["test.f32"] == .float32(0.25) && f["test.i64"] == .int64(-5))
            #expect(f["test.f64"] == .float64(1e-300) && f["test.bool"] == .bool(true))
            #expect(f["test.strings"]?.array == [.string("a b"), .string("Ġx"), .string("")])
            #expect(try f.floats(try #require(f.tensor("f32"))) == [1, 2, 3])
            for type in [GGMLType.q8_0, .q4_0, .q4_1] {
                let t = try #require(f.tensor(type.name))
                #expect(t.type == type && t.shape == [4, 64] && t.fileOffset % alignment == 0)
                let bytes = f.withBytes(of: t) { Array($0) }
                #expect(bytes == (try ggmlQuantize(type, x)))
            }
            let h = try f.floats(try #require(f.tensor("F16")))
            #expect(zip(h, x).allSatisfy { abs($0 - $1) <= abs($1) / 1024 + 1e-7 })
        }
    }
}

fileprivate struct GGUFTestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
