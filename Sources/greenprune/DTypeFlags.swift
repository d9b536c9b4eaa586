import ArgumentParser
import GreenPrune

extension WeightDType: ExpressibleByArgument {}

/// `--dtype auto|f32|bf16|f16`, for the commands that load or write model weights: the type the
/// float weights are kept in while the command runs (where it can run on them) and written in.
struct DTypeFlags: ParsableArguments {
    @Option(help: "Storage type of the float weights: auto (the checkpoint's own), f32, bf16 or f16; outputs keep it.")
    var dtype: WeightDType = .auto
}
