/// A hash map from scalar sequences (token strings, compared scalar by scalar) to sequences of
/// `Int32` (one id for a vocabulary, a word's ids for the BPE cache), with every key and value
/// stored in one pool.
///
/// A `[[Unicode.Scalar]: …]` dictionary allocates one array per key and per value: about 3.5 MB
/// of small blocks for a 49k vocabulary, and a word cache filled while a corpus is tokenized
/// leaves its entries scattered through the heap the tokenization used, which then cannot be
/// given back. Here an entry is a run of the pool,
/// `[keyCount, valueCount, key scalars…, values…]`, and the table is open addressing with
/// linear probing over pool offsets (load ≤ 1/2).
public struct ScalarSequenceMap {
    private var pool: [UInt32] = []
    /// Pool offset + 1 of each slot's entry; 0 = empty. `slots.count` is a power of two.
    private var slots: [Int32]
    public private(set) var count = 0

    public init(minimumCapacity: Int = 0) {
        var n = 16
        while n < 2 * minimumCapacity { n <<= 1 }
        slots = [Int32](repeating: 0, count: n)
    }

    /// FNV-1a over the scalar values, then a final mix (the low bits pick the slot).
    private static func hash<S: Sequence>(_ values: S) -> Int where S.Element == UInt32 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in values { h = (h ^ UInt64(v)) &* 0x0000_0100_0000_01b3 }
        h ^= h >> 29; h = h &* 0xbf58_476d_1ce4_e5b9; h ^= h >> 32
        return Int(truncatingIfNeeded: h)
    }

    private func keyMatches<K: Collection>(_ key: K, at offset: Int) -> Bool where K.Element == Unicode.Scalar {
        guard Int(pool[offset]) == key.count else { return false }
        var i = offset + 2
        for c in key {
            if pool[i] != c.value { return false }
            i += 1
        }
        return true
    }

    /// The slot holding `key`, or the empty slot where it would go.
    private func slot<K: Collection>(_ key: K) -> (index: Int, found: Bool) where K.Element == Unicode.Scalar {
        let mask = slots.count - 1
        var i = Self.hash(key.lazy.map(\.value)) & mask
        while true {
            let s = Int(slots[i])
            if s == 0 { return (i, false) }
            if keyMatches(key, at: s - 1) { return (i, true) }
            i = (i + 1) & mask
        }
    }

    /// The value stored for `key`.
    public func value<K: Collection>(_ key: K) -> ArraySlice<UInt32>? where K.Element == Unicode.Scalar {
        let (i, found) = slot(key)
        guard found else { return nil }
        let o = Int(slots[i]) - 1
        let start = o + 2 + Int(pool[o])
        return pool[start ..< start + Int(pool[o + 1])]
    }

    /// The single id stored for `key` (vocabularies).
    public func id<K: Collection>(_ key: K) -> Int? where K.Element == Unicode.Scalar {
        guard let v = value(key), let first = v.first else { return nil }
        return Int(Int32(bitPattern: first))
    }

    /// Stores `value` for `key`, replacing an earlier value (whose pool run is left unused).
    public mutating func set<K: Collection, V: Collection>(_ key: K, _ value: V)
        where K.Element == Unicode.Scalar, V.Element == Int32 {
        let offset = pool.count
        precondition(offset < Int(Int32.max), "ScalarSequenceMap pool beyond 2^31 words")
        pool.append(UInt32(key.count))
        pool.append(UInt32(value.count))
        for c in key { pool.append(c.value) }
        for v in value { pool.append(UInt32(bitPattern: v)) }
        let (i, found) = slot(key)
        slots[i] = Int32(offset + 1)
        if found { return }
        count += 1
        if 2 * count > slots.count { grow() }
    }

    private mutating func grow() {
        let old = slots
        slots = [Int32](repeating: 0, count: old.count * 2)
        let mask = slots.count - 1
        for s in old where s != 0 {
            let o = Int(s) - 1
            var i = Self.hash(pool[(o + 2) ..< (o + 2 + Int(pool[o]))]) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = s
        }
    }

    /// Empties the map, keeping its storage.
    public mutating func removeAll() {
        pool.removeAll(keepingCapacity: true)
        for i in slots.indices { slots[i] = 0 }
        count = 0
    }

    /// Every (key, value) pair, in no particular order.
    public func forEach(_ body: (ArraySlice<UInt32>, ArraySlice<UInt32>) throws -> Void) rethrows {
        for s in slots where s != 0 {
            let o = Int(s) - 1
            let k = Int(pool[o]), v = Int(pool[o + 1])
            try body(pool[(o + 2) ..< (o + 2 + k)], pool[(o + 2 + k) ..< (o + 2 + k + v)])
        }
    }
}
