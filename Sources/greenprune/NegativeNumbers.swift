/// Negative numbers as option values.
///
/// swift-argument-parser reads `--ratio -1` as `--ratio` followed by a short option `-1`, and
/// reports "Missing value for '--ratio <ratio>'" instead of the range check the command would
/// make. No GreenPrune option or flag starts with a digit, so a number after `--name` is that
/// option's value: it is attached (`--ratio=-1`), which the parser reads as a value.
enum NegativeNumbers {
    /// `arguments` (without the program name) with every `--name -N` before `--` written
    /// `--name=-N`.
    static func attach(_ arguments: [String]) -> [String] {
        var out: [String] = []
        out.reserveCapacity(arguments.count)
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" {
                out += arguments[i...]
                break
            }
            if a.hasPrefix("--"), a.count > 2, !a.contains("="), i + 1 < arguments.count, isNegativeNumber(arguments[i + 1]) {
                out.append(a + "=" + arguments[i + 1])
                i += 2
                continue
            }
            out.append(a)
            i += 1
        }
        return out
    }

    /// `-1`, `-0.5`, `-.5`, `-1e-3`.
    static func isNegativeNumber(_ s: String) -> Bool {
        guard s.count > 1, s.first == "-", let second = s.dropFirst().first, second.isNumber || second == "." else { return false }
        return Double(s) != nil
    }
}
