/// Character classes the tokenizer stages test, as Hugging Face `tokenizers` (Rust `char`
/// methods, Oniguruma `\p{L}`, `\p{N}`, `\s`) defines them.
///
/// Basic-plane scalars are classified once into a 64 Ki-entry table; the rest go through the
/// standard library's Unicode properties.
enum ScalarClass {
    static let letter: UInt16 = 1          // \p{L}: Lu Ll Lt Lm Lo
    static let number: UInt16 = 2          // \p{N}, Rust is_numeric: Nd Nl No
    static let space: UInt16 = 4           // \s, Rust is_whitespace: the White_Space property
    static let punctuation: UInt16 = 8     // P*: Pc Pd Ps Pe Pi Pf Po
    static let nonspacingMark: UInt16 = 16 // Mn (what strip-accents removes)
    static let other: UInt16 = 32          // C*: Cc Cf Cs Co Cn (BERT's "control")
    static let mark: UInt16 = 64           // M*: Mn Mc Me
    static let decimal: UInt16 = 128       // Nd
    static let connector: UInt16 = 256     // Pc

    /// The class bits of one scalar.
    @inline(__always)
    static func of(_ s: Unicode.Scalar) -> UInt16 {
        let v = s.value
        return v < 0x10000 ? bmp[Int(v)] : compute(s)
    }

    static let bmp: [UInt16] = (0..<0x10000).map { v in
        guard let s = Unicode.Scalar(UInt32(v)) else { return other } // surrogates: Cs
        return compute(s)
    }

    static func compute(_ s: Unicode.Scalar) -> UInt16 {
        let p = s.properties
        var bits: UInt16 = p.isWhitespace ? space : 0
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            bits |= letter
        case .decimalNumber: bits |= number | decimal
        case .letterNumber, .otherNumber: bits |= number
        case .connectorPunctuation: bits |= punctuation | connector
        case .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation:
            bits |= punctuation
        case .nonspacingMark: bits |= nonspacingMark | mark
        case .spacingMark, .enclosingMark: bits |= mark
        case .control, .format, .surrogate, .privateUse, .unassigned: bits |= other
        default: break
        }
        return bits
    }

    @inline(__always) static func isLetter(_ s: Unicode.Scalar) -> Bool { of(s) & letter != 0 }
    @inline(__always) static func isNumber(_ s: Unicode.Scalar) -> Bool { of(s) & number != 0 }
    @inline(__always) static func isSpace(_ s: Unicode.Scalar) -> Bool { of(s) & space != 0 }
    /// Oniguruma's `\w`: letters, marks, decimal digits, connector punctuation.
    @inline(__always) static func isWord(_ s: Unicode.Scalar) -> Bool {
        of(s) & (letter | mark | decimal | connector) != 0
    }
    /// BERT's punctuation: any ASCII punctuation/symbol, or Unicode category P*.
    @inline(__always) static func isBertPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
            return true
        }
        return of(s) & punctuation != 0
    }
    /// BERT's "control" characters (removed by clean_text): C* except tab, newline, return.
    @inline(__always) static func isBertControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        return of(s) & other != 0
    }
    /// The CJK ideograph blocks BERT surrounds with spaces.
    @inline(__always) static func isCJK(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default: return false
        }
    }
}

/// GPT-2's reversible map between bytes and printable scalars (`bytes_to_unicode`): the
/// printable Latin-1 bytes stand for themselves, the other 68 map to U+0100 onwards in order.
enum ByteLevelTable {
    /// Byte → scalar.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(256 + extra) ?? "\u{FFFD}"  // 256...323: always valid
                extra += 1
            }
        }
        return table
    }()

    /// Scalar value → byte, for the 256 scalars above (nil elsewhere).
    static let scalarToByte: [UInt32: UInt8] = {
        var d = [UInt32: UInt8]()
        for (b, s) in byteToScalar.enumerated() { d[s.value] = UInt8(b) }
        return d
    }()
}
