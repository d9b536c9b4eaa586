import Foundation
import Testing
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

    @Test func shapeMismatchIsAnError() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gp-h5-\(UUID().uuidString).h5")
        let w = try HDF5Writer(url: url)
        #expect(throws: InputError.self) { try w.write("x", [1, 2, 3] as [Float], shape: [2, 2]) }
    }
}
