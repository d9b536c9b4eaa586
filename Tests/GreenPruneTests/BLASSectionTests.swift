import Foundation
import Testing
import GreenPrune

/// `BLAS.whileSingleThreaded` sets OpenBLAS to one thread for the whole process. A product that
/// another thread starts meanwhile must wait for the section instead of running on that one
/// thread, where OpenBLAS rounds it differently (tests and library users run models side by side).
@Suite struct BLASSectionTests {
    /// (M, N, K) x (M, K) · Wᵀ products; on AVX2 OpenBLAS rounds each differently on one thread
    /// than on two.
    static let shapes = [(512, 1536, 576), (2048, 576, 576), (64, 576, 576)]

    static func operands(_ m: Int, _ n: Int, _ k: Int) -> ([Float], [Float]) {
        var g = SystemRandomNumberGenerator()
        return ((0 ..< m * k).map { _ in Float.random(in: -0.5 ..< 0.5, using: &g) },
                (0 ..< n * k).map { _ in Float.random(in: -0.5 ..< 0.5, using: &g) })
    }

    static func product(_ x: [Float], _ w: [Float], _ m: Int, _ n: Int, _ k: Int) -> [Float] {
        var out = [Float](repeating: 0, count: m * n)
        matmulLinear(&out, x, w, m: m, n: n, k: k)
        return out
    }

    final class Log: @unchecked Sendable {
        let lock = NSLock()
        var sectionLeft: Date?
        var threadsSeenInside = 0
        var productDone: Date?
        var singleThreaded: [[Float]] = []
        var outside: [[Float]] = []
        var nestedRan = false
        func with<T>(_ body: (Log) throws -> T) rethrows -> T { lock.lock(); defer { lock.unlock() }; return try body(self) }
    }

    /// A thread that starts products while another holds a section: its products finish only
    /// after the section ends, and equal (bit for bit) the products computed with no section
    /// anywhere; `BLAS.threads` reads the configured count meanwhile, not the section's one.
    /// Inside the section a worker's own product is the single-threaded one, and a nested
    /// section declines (false) instead of waiting for itself.
    @Test(.enabled(if: BLAS.threads > 1, "OpenBLAS runs on one thread here: no section can start"))
    func productsWaitForASectionAndKeepTheirThreads() throws {
        let configured = BLAS.threads
        let ops = Self.shapes.map { Self.operands($0.0, $0.1, $0.2) }
        let reference = zip(Self.shapes, ops).map { s, o in Self.product(o.0, o.1, s.0, s.1, s.2) }
        let log = Log()
        let entered = DispatchSemaphore(value: 0), started = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)

        let other = Thread {
            entered.wait()
            let seen = BLAS.threads
            started.signal()
            let results = zip(Self.shapes, ops).map { s, o in Self.product(o.0, o.1, s.0, s.1, s.2) }
            let done = Date()
            log.with { $0.threadsSeenInside = seen; $0.outside = results; $0.productDone = done }
            finished.signal()
        }
        other.start()
        let ran = BLAS.whileSingleThreaded(workers: 2) { w in
            guard w == 0 else { return }
            let nested = BLAS.whileSingleThreaded(workers: 2) { _ in log.with { $0.nestedRan = true } }
            #expect(!nested)
            entered.signal()
            started.wait()
            // The other thread is now calling sgemm; give it time to get past the gate if the
            // gate let it.
            Thread.sleep(forTimeInterval: 0.3)
            let single = zip(Self.shapes, ops).map { s, o in Self.product(o.0, o.1, s.0, s.1, s.2) }
            let left = Date()
            log.with { $0.singleThreaded = single; $0.sectionLeft = left }
        }
        #expect(ran)
        finished.wait()

        try log.with { l in
            let left = try #require(l.sectionLeft), done = try #require(l.productDone)
            #expect(done >= left, "a product outside the section finished \(left.timeIntervalSince(done)) s before the section ended")
            #expect(l.threadsSeenInside == configured)
            #expect(!l.nestedRan)
            for (i, s) in Self.shapes.enumerated() {
                let differing = zip(l.outside[i], reference[i]).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(differing == 0, "\(s): \(differing) outputs of a product outside the section were computed differently")
            }
            // Whether the shapes tell one thread from two on this CPU's kernels (they do on AVX2).
            let differ = zip(l.singleThreaded, reference).filter { $0 != $1 }.count
            print("BLAS sections: \(differ) of \(Self.shapes.count) products round differently on one thread (\(configured) configured)")
        }
        #expect(BLAS.threads == configured)
    }
}
