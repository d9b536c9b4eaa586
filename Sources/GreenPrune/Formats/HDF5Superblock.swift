import Foundation

/// The first fields of an HDF5 file's superblock, checked before libhdf5 is given the file:
/// libhdf5 is C and parses whatever it is handed, so a file that is not HDF5, or whose superblock
/// is impossible or cut short, is refused here with a one-line error and never reaches it.
///
/// Layout (HDF5 file format specification, "Superblock"): the 8-byte signature at byte 0 or, after
/// a user block, at 512, 1024, 2048, …; then the superblock version, 0–3. Versions 0 and 1 follow
/// it with the free-space, root-group and shared-header message versions (each 0) around a reserved
/// byte, then the sizes of offsets and lengths, and (after 8 more bytes, 12 in version 1) the base,
/// free-space, end-of-file and driver addresses; versions 2 and 3 follow it with the two sizes, a
/// flags byte and the base, extension, end-of-file and root-header addresses. Offsets and
/// lengths are 2, 4, 8, 16 or 32 bytes.
///
/// What this cannot check is everything the superblock points at (object headers, B-trees,
/// heaps): libhdf5 reads those itself, and a damaged one is its error (or, for a size field
/// beyond memory, a refused allocation it reports as an error).
enum HDF5Superblock {
    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]
    static let fieldSizes: Set<Int> = [2, 4, 8, 16, 32]

    /// Throws a one-line error naming `url` unless it starts (after a user block) with a
    /// superblock libhdf5 can read whose end-of-file address lies within the file.
    static func check(_ url: URL) throws {
        guard let h = try? FileHandle(forReadingFrom: url) else { throw InputError(url.path, "cannot read the file") }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()) ?? 0
        func read(_ at: UInt64, _ count: Int) -> [UInt8]? {
            guard at <= size, (try? h.seek(toOffset: at)) != nil, let d = try? h.read(upToCount: count), d.count == count else { return nil }
            return Array(d)
        }
        var at: UInt64 = 0
        while read(at, 8) != signature {
            at = at == 0 ? 512 : at * 2
            guard at + 8 <= size else { throw InputError(url.path, "not an HDF5 file (no HDF5 signature)") }
        }
        guard let head = read(at + 8, 8) else { throw InputError(url.path, "damaged or truncated HDF5 file: the superblock is cut off") }
        let version = Int(head[0])
        let (sizes, addresses): ((Int, Int), UInt64)
        switch version {
        case 0, 1:
            guard head[1] == 0, head[2] == 0, head[3] == 0, head[4] == 0 else {
                throw InputError(url.path, "damaged or truncated HDF5 file: superblock version fields \(head[1...4].map(String.init).joined(separator: ",")), expected 0")
            }
            sizes = (Int(head[5]), Int(head[6]))
            addresses = at + (version == 0 ? 24 : 28)
        case 2, 3:
            sizes = (Int(head[1]), Int(head[2]))
            addresses = at + 12
        default:
            throw InputError(url.path, "damaged or truncated HDF5 file: superblock version \(version), expected 0 to 3")
        }
        guard fieldSizes.contains(sizes.0), fieldSizes.contains(sizes.1) else {
            throw InputError(url.path, "damaged or truncated HDF5 file: superblock \(sizes.0)-byte offsets and \(sizes.1)-byte lengths, expected 2, 4, 8, 16 or 32")
        }
        // Base, then (free-space or extension), then end-of-file address, each `sizes.0` bytes.
        let o = sizes.0
        guard let fields = read(addresses, 3 * o) else { throw InputError(url.path, "damaged or truncated HDF5 file: the superblock is cut off") }
        func address(_ i: Int) -> UInt64? {
            let bytes = fields[i * o ..< (i + 1) * o]
            if bytes.allSatisfy({ $0 == 0xff }) { return nil }   // the undefined address
            guard bytes.dropFirst(min(o, 8)).allSatisfy({ $0 == 0 }) else { return UInt64.max }
            return bytes.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }
        let base = address(0) ?? 0
        if let eof = address(2) {
            let (end, overflow) = base.addingReportingOverflow(eof)
            guard !overflow, end <= size else {
                throw InputError(url.path, "damaged or truncated HDF5 file: the superblock puts its end at byte \(overflow ? "beyond 2^64" : String(end)), the file has \(size) bytes")
            }
        }
    }
}
