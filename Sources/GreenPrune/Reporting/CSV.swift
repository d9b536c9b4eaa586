import Foundation

/// RFC 4180 CSV: fields with a comma, quote or line break are quoted, quotes doubled.
public enum CSV {
    /// One record with its `\n`.
    public static func line(_ fields: [String]) -> String {
        fields.map(quote).joined(separator: ",") + "\n"
    }

    public static func quote(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Parses CSV text into records (quoted fields may hold commas, quotes and line breaks).
    public static func parse(_ text: String) -> [[String]] {
        var records: [[String]] = []
        var field = ""
        var record: [String] = []
        var inQuotes = false
        var it = Array(text.unicodeScalars)[...]
        while let c = it.popFirst() {
            if inQuotes {
                if c == "\"" {
                    if it.first == "\"" { field.unicodeScalars.append("\""); it.removeFirst() } else { inQuotes = false }
                } else {
                    field.unicodeScalars.append(c)
                }
            } else if c == "\"" {
                inQuotes = true
            } else if c == "," {
                record.append(field); field = ""
            } else if c == "\n" || c == "\r" {
                if c == "\r", it.first == "\n" { it.removeFirst() }
                record.append(field); field = ""
                records.append(record); record = []
            } else {
                field.unicodeScalars.append(c)
            }
        }
        if !field.isEmpty || !record.isEmpty { record.append(field); records.append(record) }
        return records
    }

    /// Records as dictionaries keyed by the header row.
    public static func table(_ text: String) -> [[String: String]] {
        let recs = parse(text)
        guard let header = recs.first else { return [] }
        return recs.dropFirst().map { r in
            var d: [String: String] = [:]
            for (i, h) in header.enumerated() where i < r.count { d[h] = r[i] }
            return d
        }
    }
}
