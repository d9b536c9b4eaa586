import Foundation

/// Readers for the evaluation data files, with errors that name the file and the line.
public enum DataFiles {
    /// The file's lines without their `\n` (a final newline does not start an empty line).
    /// Throws for a missing, unreadable, non-UTF-8 or empty file.
    public static func lines(_ url: URL) throws -> [Substring] {
        let text = try self.text(url)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if text.hasSuffix("\n") { lines.removeLast() }
        return lines
    }

    /// The whole file as UTF-8 text; an error for a missing, unreadable or empty file.
    ///
    /// CRLF line ends become LF. Every data file GreenPrune reads (wiki.test.raw, PTB, the
    /// JSONL and TSV task files) is LF-only as published; a CRLF copy is a transport artifact
    /// (a Windows checkout), and Swift treats "\r\n" as one Character that a split on "\n"
    /// never sees. Normalising gives the rows the Hugging Face loaders give for the LF file, so
    /// the same documents and the same scores. A lone "\r" inside a line is text and stays.
    public static func text(_ url: URL) throws -> String {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw InputError(url.path, "data file not found (set --data-dir or GREENPRUNE_DATA)")
        }
        let data = try RegularFile.contents(url)
        guard !data.isEmpty else { throw InputError(url.path, "empty file") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw InputError(url.path, "not UTF-8 text")
        }
        return normalizingLineEnds(text)
    }

    /// `text` with every CRLF pair replaced by LF (other characters untouched).
    public static func normalizingLineEnds(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard bytes.contains(13) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for (i, b) in bytes.enumerated() where !(b == 13 && i + 1 < bytes.count && bytes[i + 1] == 10) { out.append(b) }
        return String(decoding: out, as: UTF8.self)
    }

    /// One JSON object per non-blank line, with its 1-based line number.
    public static func jsonLines(_ url: URL) throws -> [(line: Int, object: [String: Any])] {
        var out: [(Int, [String: Any])] = []
        for (i, raw) in try lines(url).enumerated() {
            if raw.allSatisfy({ $0.isWhitespace }) { continue }
            let parsed = try? JSONSerialization.jsonObject(with: Data(raw.utf8), options: [])
            guard let object = parsed as? [String: Any] else {
                throw InputError("\(url.path):\(i + 1)", "malformed JSON line (expected one object)")
            }
            out.append((i + 1, object))
        }
        guard !out.isEmpty else { throw InputError(url.path, "no documents (only blank lines)") }
        return out
    }

    /// A field as text: strings as is, integer-valued numbers without a decimal point; nil for arrays, objects, null or absence.
    public static func string(_ value: Any?) -> String? {
        switch value {
        case let s as String: return s
        case let n as NSNumber:
            let d = n.doubleValue
            if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
            return String(d)
        default: return nil
        }
    }

    /// A field as an array of strings, or nil.
    public static func strings(_ value: Any?) -> [String]? {
        guard let a = value as? [Any] else { return nil }
        var out: [String] = []
        for v in a {
            guard let s = string(v) else { return nil }
            out.append(s)
        }
        return out
    }
}
