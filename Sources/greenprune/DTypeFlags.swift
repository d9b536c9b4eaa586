import ArgumentParser
import GreenPrune

extension WeightDType: ExpressibleByArgument {}

/// `--dtype auto|f32|bf16|f16`, for the commands that load or write model weights: the type the
/// float weights are kept in while the command runs (where it can run on them) and written in.
struct DTypeFlags: ParsableArguments {
    @Option(name: .customLong("dtype"), help: "Storage type of the float weights: auto (the checkpoint's own; the default), f32, bf16 or f16; outputs keep it.")
    var given: WeightDType?

    /// `--dtype`, or auto when it is not given.
    var dtype: WeightDType { given ?? .auto }

    /// A command's options (`dtype` of an options file) with `--dtype` over them, when given.
    func apply(to dtype: inout WeightDType?) {
        if let given { dtype = given == .auto ? nil : given }
    }
}
