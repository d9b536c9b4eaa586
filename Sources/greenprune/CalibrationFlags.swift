import ArgumentParser
import GreenPrune

/// The calibration text of `prune` and `quantize` (`CalibrationSettings`); a flag left out keeps
/// the options file's value or the command's default.
struct CalibrationFlags: ParsableArguments {
    @Option(help: "Calibration JSONL (field 'text'); default the C4 sample in the data directory.")
    var calibration: String?

    @Option(help: "Calibration documents (default: prune \(PruneSettings().numExamples), quantize \(QuantizeSettings(bits: 8).numExamples)).")
    var numExamples: Int?

    @Option(help: "Tokens per calibration document (default: prune \(PruneSettings().calibrationLen), quantize \(QuantizeSettings(bits: 8).calibrationLen)).")
    var calibrationLen: Int?

    func apply<S: CalibrationSettings>(to s: inout S) {
        if let calibration { s.calibration = calibration }
        if let numExamples { s.numExamples = numExamples }
        if let calibrationLen { s.calibrationLen = calibrationLen }
    }
}

