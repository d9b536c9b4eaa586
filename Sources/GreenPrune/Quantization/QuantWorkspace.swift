import Foundation

/// Scratch memory of quantized products, one set per calling thread, grown on demand and kept:
/// the packed activations and the expanded weight tiles of `QuantizedLinear`.
///
/// A product used to allocate and free these (megabytes) on every call. glibc then raises its
/// mmap threshold and serves them from the heap, which fragments and stays large; reusing one
/// buffer per role keeps the peak resident set at what the products need.
final class QuantWorkspace {
    /// What a buffer holds; each role has its own buffer.
    enum Role: Int, CaseIterable {
        /// Activations packed for AMX tiles (`QuantizedLinear.PackedInput`).
        case packedInput
        /// Weight rows expanded for one tile of a product (AMX tiles or float32 for sgemm).
        case weightTile
    }

    private var buffers: [UnsafeMutableRawPointer?] = Array(repeating: nil, count: Role.allCases.count)
    private var capacities = Array(repeating: 0, count: Role.allCases.count)

    deinit { for b in buffers { b?.deallocate() } }

    /// At least `bytes` bytes, 64-byte aligned, for `role`; valid until the next call for the
    /// same role on this thread (contents are lost when it grows).
    func buffer(_ role: Role, bytes: Int) -> UnsafeMutableRawPointer {
        let i = role.rawValue
        if bytes > capacities[i] || buffers[i] == nil {
            buffers[i]?.deallocate()
            capacities[i] = Swift.max(bytes, 64)
            buffers[i] = UnsafeMutableRawPointer.allocate(byteCount: capacities[i], alignment: 64)
        }
        return buffers[i]!
    }

    private static let key = "GreenPrune.QuantWorkspace"

    /// This thread's workspace (freed with the thread).
    static var current: QuantWorkspace {
        let d = Thread.current.threadDictionary
        if let w = d[key] as? QuantWorkspace { return w }
        let w = QuantWorkspace()
        d[key] = w
        return w
    }
}
