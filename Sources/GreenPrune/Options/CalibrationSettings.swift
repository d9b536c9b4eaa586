import Foundation

/// The calibration text of the commands that read one (`prune`'s gradients, `quantize`'s GPTQ,
/// SmoothQuant and AWQ): the same three options in both, each command with its own defaults.
public protocol CalibrationSettings {
    /// JSONL with a `text` field; nil: the C4 sample in the data directory.
    var calibration: String? { get set }
    /// Calibration documents.
    var numExamples: Int { get set }
    /// Tokens per calibration document.
    var calibrationLen: Int { get set }
}

extension CalibrationSettings {
    /// Throws an `OptionError` for a count the calibration cannot use.
    public func validateCalibration() throws {
        guard numExamples >= 1 else { throw OptionError("num_examples", "must be at least 1, got \(numExamples)") }
        guard calibrationLen >= 2 else { throw OptionError("calibration_len", "must be at least 2, got \(calibrationLen)") }
    }

    /// The calibration file: the option's, else the C4 sample under `dataDirectory`.
    public func calibrationFile(dataDirectory: URL) -> URL {
        calibration.map { URL(fileURLWithPath: $0) } ?? Calibration.defaultFile(dataDirectory: dataDirectory)
    }
}
