import Foundation

/// Calibration samples per ../shared/TASKS.md: from a JSONL file (field `text`), in file order,
/// the first `count` documents whose encoding (no special tokens) has at least `length` tokens,
/// each cut to its first `length` tokens.
public enum Calibration {
    /// The default file: the C4 validation sample under the data directory.
    public static func defaultFile(dataDirectory: URL) -> URL {
        dataDirectory.appendingPathComponent("c4_sample/c4_validation_2k.jsonl")
    }

    /// `maxLength`: the model's positions, which `length` must not exceed.
    public static func samples(file: URL, tokenizer: Tokenizer, count: Int, length: Int, maxLength: Int? = nil) throws -> [[Int]] {
        guard count >= 1 else { throw InputError("--num-examples", "must be at least 1") }
        guard length >= 2 else { throw InputError("--calibration-len", "must be at least 2") }
        if let maxLength, length > maxLength {
            throw InputError("--calibration-len", "\(length) exceeds the model's \(maxLength) positions")
        }
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw InputError(file.path, "calibration file is missing (--calibration or --data-dir)")
        }
        let text: String
        do { text = try String(contentsOf: file, encoding: .utf8) } catch {
            throw InputError(file.path, "cannot read the calibration file")
        }
        var out: [[Int]] = []
        var lineNo = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            if line.allSatisfy(\.isWhitespace) { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let doc = obj["text"] as? String else {
                throw InputError(file.path, "line \(lineNo) is not a JSON object with a string field 'text'")
            }
            let ids = try tokenizer.encode(doc, addSpecialTokens: false)
            if ids.count >= length { out.append(Array(ids.prefix(length))) }
            if out.count == count { return out }
        }
        throw InputError(file.path, "only \(out.count) documents have at least \(length) tokens; \(count) requested")
    }

    /// FNV-1a 64-bit hash of the ids (little-endian int32 each, sample after sample), as hex:
    /// two runs calibrated on the same tokens record the same hash.
    public static func idsHash(_ samples: [[Int]]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for s in samples {
            for id in s {
                var v = UInt32(truncatingIfNeeded: id).littleEndian
                withUnsafeBytes(of: &v) { for b in $0 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 } }
            }
        }
        return String(format: "%016llx", h)
    }
}
