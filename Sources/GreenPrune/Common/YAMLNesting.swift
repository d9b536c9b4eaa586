import Foundation
import CYaml

/// A bound on how deeply a YAML document nests, checked before it is composed into nodes.
///
/// Yams builds its node tree (and later frees it) by recursion, one stack frame per level, so a
/// document nested a few thousand levels deep (`[[[[…`, or block mappings indented ever further)
/// overflows the stack and kills the process without a message. libyaml's own event parser keeps
/// its state on the heap, so walking its events first finds the depth at no risk; the walk stops
/// at the first level past the bound. Configs and task descriptions nest a handful of levels.
public enum YAMLNesting {
    /// The deepest nesting of sequences and mappings accepted.
    public static let maxDepth = 64

    /// Throws `InputError("file:line", …)` at the first collection nested deeper than `limit`.
    ///
    /// Syntax errors are left for the real parse to report (with its own wording); up to the
    /// point of such an error the document has been checked, so that parse recurses no deeper
    /// than `limit` either.
    public static func check(_ text: String, file: String, limit: Int = maxDepth) throws {
        var bytes = Array(text.utf8)
        if bytes.isEmpty { return }
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw InputError(file, "cannot parse YAML: out of memory")
        }
        defer { yaml_parser_delete(&parser) }
        let count = bytes.count
        var tooDeep: Int? = nil
        bytes.withUnsafeMutableBufferPointer { buf in
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(&parser, buf.baseAddress, count)
            var depth = 0
            var event = yaml_event_t()
            while yaml_parser_parse(&parser, &event) == 1 {
                let type = event.type
                let line = Int(event.start_mark.line) + 1
                yaml_event_delete(&event)
                switch type {
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    depth += 1
                    if depth > limit { tooDeep = line; return }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    depth -= 1
                case YAML_STREAM_END_EVENT:
                    return
                default:
                    break
                }
            }
        }
        if let line = tooDeep {
            throw InputError("\(file):\(line)", "YAML nested deeper than \(limit) levels")
        }
    }
}
