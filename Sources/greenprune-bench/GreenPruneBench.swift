import ArgumentParser
import Foundation
import GreenPrune

extension MeterChoice: ExpressibleByArgument {}
extension ActivationQuantization: ExpressibleByArgument {}

/// `greenprune-bench`: the measurements behind the README's speed, memory and overhead figures,
/// kept out of the product CLI. scripts/bench*.sh run it.
@main
struct GreenPruneBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "greenprune-bench",
        abstract: "Benchmarks of GreenPrune's kernels, forward pass, pruning, evaluation, quantization and energy tracker.",
        version: GreenPruneInfo.version,
        subcommands: [SgemmBench.self, KernelsBench.self, ModelBench.self, EnergyBench.self, PruneBench.self, EvalBench.self, QuantBench.self]
    )

    /// As `greenprune`: OpenBLAS on the kernels this CPU can run, idle threads asleep, errors
    /// about files on one line.
    static func main() {
        BLASCoreType.reexecIfGeneric()
        BLAS.sleepWhenIdle()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: FileErrors.oneLine(error))
        }
    }
}
