import Foundation

/// A read-only file mapped into memory with `mmap(2)` (`MAP_PRIVATE`, `PROT_READ`).
///
/// Pages are read from the page cache on first touch and never copied, so float32 weights
/// inside a safetensors file cost no extra memory. Unmapped when the last reference goes.
public final class MappedFile: @unchecked Sendable {
    /// The file's path.
    public let url: URL
    /// Size in bytes.
    public let count: Int
    /// The first byte (nil for an empty file).
    public let base: UnsafeRawPointer?
    /// The open file, kept for `read(_:count:at:)`.
    private let fd: Int32

    /// Maps `url`; the error names the file.
    public init(_ url: URL) throws {
        self.url = url
        // stat first: open(2) itself blocks on a FIFO. O_NONBLOCK covers a swap after the check
        // and changes nothing for the regular file that is then required.
        try RegularFile.check(url)
        let fd = open(url.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw InputError(url.path, "cannot open: \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw InputError(url.path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { close(fd); throw InputError(url.path, "not a regular file") }
        count = Int(st.st_size)
        self.fd = fd
        if count == 0 { base = nil; return }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            close(fd)
            throw InputError(url.path, "cannot mmap: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    /// `count` bytes of anonymous memory that `fill` writes once, then read-only: tensors converted
    /// from another format (a TensorFlow checkpoint), handed out the way a mapped file's are.
    /// `url` is the file they came from, for messages. There is no file behind the memory, so
    /// `read(_:count:at:)` answers false (callers read the memory) and `release` keeps the pages,
    /// which are the only copy.
    public init(memoryFrom url: URL, count: Int, fill: (UnsafeMutableRawPointer) throws -> Void) throws {
        self.url = url
        self.count = count
        fd = -1
        if count == 0 { base = nil; return }
        let p = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else {
            throw InputError(url.path, "cannot allocate \(count) bytes: \(String(cString: strerror(errno)))")
        }
        do { try fill(p) } catch {
            munmap(p, count)
            throw error
        }
        mprotect(p, count, PROT_READ)
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
        if fd >= 0 { close(fd) }
    }

    /// True when a file backs the bytes (false for `init(memoryFrom:count:fill:)`).
    public var isFile: Bool { fd >= 0 }

    /// Copies `count` bytes at file offset `offset` into `dst` with pread(2), not through the
    /// mapping: the bytes come from the page cache without becoming resident pages of this
    /// process. False when the read fails or comes up short (the caller falls back to the mapping).
    public func read(_ dst: UnsafeMutableRawPointer, count n: Int, at offset: Int) -> Bool {
        guard fd >= 0 else { return false }
        var done = 0
        while done < n {
            let got = pread(fd, dst + done, n - done, off_t(offset + done))
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { return false }
            done += got
        }
        return true
    }

    /// Drops this process's resident pages of `range` (the whole pages inside it) after their
    /// contents were copied elsewhere, e.g. scales converted at load: the memory is counted
    /// once, not twice. A later read faults the pages back in from the page cache.
    public func release(_ range: Range<Int>) {
        guard let base, fd >= 0, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (range.lowerBound + page - 1) / page * page, hi = range.upperBound / page * page
        guard hi > lo else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + lo), hi - lo, Int32(MADV_DONTNEED))
    }

    /// The bytes `range` of the file (the caller has checked the range).
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }
}

/// A contiguous float32 buffer that is either a view into a mapped file (zero-copy weights)
/// or memory this object owns (converted, pruned or computed values).
///
/// Weights are shared by reference: a tied output layer and the embedding hold the same
/// storage. Mapped storage is read-only; owned storage may be written through `mutablePointer`.
public final class FloatStorage: @unchecked Sendable {
    /// The first element.
    public let pointer: UnsafePointer<Float>
    /// Number of floats.
    public let count: Int
    /// The mapping this view keeps alive (nil when the memory is owned).
    public let mapping: MappedFile?
    private let owned: UnsafeMutablePointer<Float>?

    /// A zero-copy view of `count` floats at `pointer` inside `mapping` (4-byte aligned).
    public init(view pointer: UnsafePointer<Float>, count: Int, mapping: MappedFile) {
        self.pointer = pointer
        self.count = count
        self.mapping = mapping
        self.owned = nil
    }

    /// Owned, zero-filled storage of `count` floats.
    public init(zeros count: Int) {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
        self.owned = p
        self.pointer = UnsafePointer(p)
        self.count = count
        self.mapping = nil
    }

    /// Owned storage holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(zeros: values.count)
        values.withUnsafeBufferPointer { src in
            if let b = src.baseAddress, let dst = self.mutablePointer { dst.update(from: b, count: values.count) }
        }
    }

    deinit { owned?.deallocate() }

    /// True when the floats live in a mapped file (not copied into memory of our own).
    public var isMapped: Bool { mapping?.isFile == true }
    /// Writable pointer for owned storage; nil for a read-only mapped view.
    public var mutablePointer: UnsafeMutablePointer<Float>? { owned }
    /// Bytes the floats occupy.
    public var byteCount: Int { count * MemoryLayout<Float>.size }
    /// A copy of the values as an array.
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
    /// The buffer, for reading.
    public var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }

    /// out (n, c) = rows ids[0..<n] of this (V, c) table. A mapped table is read with pread, one
    /// row per token: touching a mapped row would make the kernel map the 64 KB around it
    /// (fault-around), so a few thousand scattered lookups would leave most of a table resident
    /// (SmolLM2's: 113 MB) in a model that uses it only for lookups. Owned tables are copied.
    public func gatherRows(_ ids: UnsafePointer<Int32>, count n: Int, width c: Int, into out: UnsafeMutablePointer<Float>) {
        guard let mapping, let base = mapping.base else {
            embeddingForward(out, ids: ids, table: pointer, n: n, c: c)
            return
        }
        let start = UnsafeRawPointer(pointer) - base, rowBytes = c * MemoryLayout<Float>.size
        for i in 0..<n {
            let id = Int(ids[i]), dst = out + i * c
            if !mapping.read(dst, count: rowBytes, at: start + id * rowBytes) {
                dst.update(from: pointer + id * c, count: c)
            }
        }
    }
}

/// Scratch float buffer grown on demand and reused (activations, per-(B, T) run state).
public final class ScratchBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int

    public init(_ capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = .allocate(capacity: self.capacity)
        pointer.initialize(repeating: 0, count: self.capacity)
    }

    deinit { pointer.deallocate() }

    /// Makes room for `count` floats (contents are lost when it grows) and returns the pointer.
    @discardableResult
    public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = .allocate(capacity: count)
            pointer.initialize(repeating: 0, count: count)
        }
        return pointer
    }
}
