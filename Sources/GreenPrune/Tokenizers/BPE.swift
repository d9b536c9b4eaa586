import Foundation

/// Byte-pair encoding (GPT-2 byte-level and SentencePiece style), as Hugging Face's `BPE` model:
/// a word starts as one symbol per scalar (unknown scalars become `<0xXX>` byte tokens with
/// `byte_fallback`, else the unknown token), then the adjacent pair with the lowest merge rank
/// is merged, leftmost first, until no pair has a merge.
///
/// Merges are a dictionary from the pair of ids to (rank, merged id), so the merge loop never
/// touches strings; finished words go to a per-model cache (pieces repeat a lot in text).
final class BPEModel: TokenizationModel {
    let vocab: Vocabulary
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    let merges: [UInt64: UInt64]
    let unkId: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let prefix: [Unicode.Scalar]
    let suffix: [Unicode.Scalar]
    /// Ids of one-scalar tokens (the initial symbols when there is no prefix or suffix).
    let scalarIds: [UInt32: Int32]
    /// `<0x00>`…`<0xFF>` ids, -1 where absent.
    let byteIds: [Int32]

    private var cache = ScalarSequenceMap()
    private let lock = NSLock()
    private static let cacheLimit = 200_000
    private static let cachedPieceLimit = 256

    init(_ node: JSONField) throws {
        vocab = try Vocabulary(node)
        fuseUnk = try node.bool("fuse_unk", default: false)
        byteFallback = try node.bool("byte_fallback", default: false)
        ignoreMerges = try node.bool("ignore_merges", default: false)
        prefix = Array((try node.optionalString("continuing_subword_prefix") ?? "").unicodeScalars)
        suffix = Array((try node.optionalString("end_of_word_suffix") ?? "").unicodeScalars)
        if let u = try node.optionalString("unk_token") {
            guard let id = vocab.id(u) else { throw node.error("unk_token '\(u)' is not in the vocabulary") }
            unkId = Int32(id)
        } else {
            unkId = nil
        }
        var single = [UInt32: Int32]()
        vocab.ids.forEach { tok, id in
            if tok.count == 1 { single[tok[tok.startIndex]] = Int32(bitPattern: id[id.startIndex]) }
        }
        scalarIds = single
        let v = vocab
        byteIds = (0..<256).map { b in
            v.id(String(format: "<0x%02X>", b)).map { Int32($0) } ?? -1
        }

        let mergesNode = try node.field("merges")
        let list = try mergesNode?.array() ?? []
        var m = [UInt64: UInt64](minimumCapacity: list.count)
        for (rank, entry) in list.enumerated() {
            let a: ScalarKey, b: ScalarKey
            switch entry.value {
            case .string(let line):
                let parts = Array(line.unicodeScalars).split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw entry.error("must be two tokens separated by one space") }
                a = Array(parts[0]); b = Array(parts[1])
            case .array(let pair):
                guard pair.count == 2, case .string(let x) = pair[0], case .string(let y) = pair[1] else {
                    throw entry.error("must be \"a b\" or [\"a\", \"b\"]")
                }
                a = Array(x.unicodeScalars); b = Array(y.unicodeScalars)
            default:
                throw entry.error("must be \"a b\" or [\"a\", \"b\"]")
            }
            let merged = a + b.dropFirst(prefix.count)
            guard let ia = vocab.id(a), let ib = vocab.id(b), let im = vocab.id(merged) else {
                throw entry.error("merges tokens not in the vocabulary")
            }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if m[key] == nil { m[key] = UInt64(rank) << 32 | UInt64(im) }
        }
        merges = m
    }

    func token(for id: Int) -> String? { vocab.token(id) }
    func id(for token: String) -> Int? { vocab.id(token) }
    var vocabularySize: Int { vocab.tokens.count }

    func tokenize(_ piece: [Unicode.Scalar], into ids: inout [Int]) throws {
        if piece.isEmpty { return }
        lock.lock()
        if let hit = cache.value(piece) {
            for t in hit { ids.append(Int(Int32(bitPattern: t))) }
            lock.unlock()
            return
        }
        lock.unlock()
        let word = encodeWord(piece)
        // Long pieces (runs without spaces) seldom repeat; leaving them out also bounds the pool.
        if piece.count <= Self.cachedPieceLimit {
            lock.lock()
            if cache.count >= Self.cacheLimit { cache.removeAll() }
            cache.set(piece, word)
            lock.unlock()
        }
        for t in word { ids.append(Int(t)) }
    }

    /// The initial symbols of a word (HF `BPE::merge_word` before `merge_all`).
    private func initialSymbols(_ piece: [Unicode.Scalar]) -> [Int32] {
        var syms = [Int32]()
        syms.reserveCapacity(piece.count)
        var unk: Int32? = nil
        let plain = prefix.isEmpty && suffix.isEmpty
        for (i, c) in piece.enumerated() {
            var found: Int32?
            var text = ScalarKey()
            if plain {
                found = scalarIds[c.value]
            } else {
                text = (i > 0 ? prefix : []) + [c] + (i == piece.count - 1 ? suffix : [])
                found = vocab.id(text).map { Int32($0) }
            }
            if let id = found {
                if let u = unk { syms.append(u); unk = nil }
                syms.append(id)
                continue
            }
            if byteFallback {
                let bytes = plain ? Array(String(Character(c)).utf8) : Array(String(String.UnicodeScalarView(text)).utf8)
                if bytes.allSatisfy({ byteIds[Int($0)] >= 0 }) {
                    // HF adds these without flushing a pending unknown token first.
                    for b in bytes { syms.append(byteIds[Int(b)]) }
                    continue
                }
            }
            if let u = unkId {
                if unk != nil && !fuseUnk { syms.append(u) }
                unk = u
            }
        }
        if let u = unk { syms.append(u) }
        return syms
    }

    private func encodeWord(_ piece: [Unicode.Scalar]) -> [Int32] {
        if ignoreMerges, let id = vocab.id(piece) { return [Int32(id)] }
        var sym = initialSymbols(piece)
        let n = sym.count
        if n < 2 { return sym }
        // Doubly linked list over the symbols; a merged-away symbol is marked dead.
        var prev = (0..<n).map { Int32($0) - 1 }
        var next = (0..<n).map { Int32($0) + 1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        for i in 0..<(n - 1) {
            if let m = merges[UInt64(UInt32(bitPattern: sym[i])) << 32 | UInt64(UInt32(bitPattern: sym[i + 1]))] {
                heap.push(rank: UInt32(m >> 32), pos: UInt32(i), newId: Int32(truncatingIfNeeded: m))
            }
        }
        while let top = heap.pop() {
            let pos = Int(top.pos)
            guard alive[pos], next[pos] < n else { continue }
            let r = Int(next[pos])
            // Stale entry: the pair at `pos` changed since it was queued.
            guard let m = merges[UInt64(UInt32(bitPattern: sym[pos])) << 32 | UInt64(UInt32(bitPattern: sym[r]))],
                  Int32(truncatingIfNeeded: m) == top.newId else { continue }
            sym[pos] = top.newId
            alive[r] = false
            next[pos] = next[r]
            if next[r] < n { prev[Int(next[r])] = Int32(pos) }
            if prev[pos] >= 0 {
                let p = Int(prev[pos])
                if let m2 = merges[UInt64(UInt32(bitPattern: sym[p])) << 32 | UInt64(UInt32(bitPattern: sym[pos]))] {
                    heap.push(rank: UInt32(m2 >> 32), pos: UInt32(p), newId: Int32(truncatingIfNeeded: m2))
                }
            }
            if next[pos] < n {
                let q = Int(next[pos])
                if let m2 = merges[UInt64(UInt32(bitPattern: sym[pos])) << 32 | UInt64(UInt32(bitPattern: sym[q]))] {
                    heap.push(rank: UInt32(m2 >> 32), pos: UInt32(pos), newId: Int32(truncatingIfNeeded: m2))
                }
            }
        }
        var out = [Int32]()
        out.reserveCapacity(n)
        for i in 0..<n where alive[i] { out.append(sym[i]) }
        return out
    }
}

/// A binary min-heap of pending merges ordered by (rank, position), as HF's `BinaryHeap<Merge>`.
struct MergeHeap {
    private var keys = [UInt64]()   // rank << 32 | pos
    private var ids = [Int32]()

    mutating func push(rank: UInt32, pos: UInt32, newId: Int32) {
        keys.append(UInt64(rank) << 32 | UInt64(pos))
        ids.append(newId)
        var i = keys.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if keys[p] <= keys[i] { break }
            keys.swapAt(p, i); ids.swapAt(p, i)
            i = p
        }
    }

    mutating func pop() -> (pos: UInt32, newId: Int32)? {
        guard let firstKey = keys.first, let firstId = ids.first else { return nil }
        let lastKey = keys.removeLast(), lastId = ids.removeLast()
        if !keys.isEmpty {
            keys[0] = lastKey; ids[0] = lastId
            var i = 0
            let n = keys.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && keys[l] < keys[m] { m = l }
                if r < n && keys[r] < keys[m] { m = r }
                if m == i { break }
                keys.swapAt(m, i); ids.swapAt(m, i)
                i = m
            }
        }
        return (UInt32(truncatingIfNeeded: firstKey), firstId)
    }
}
