import ArgumentParser
import Foundation
import GreenPrune

@main
struct GreenPruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "greenprune",
        abstract: "Prune and quantize LLMs, evaluate them, and measure the energy each step burns.",
        version: GreenPruneInfo.version,
        subcommands: [
            Convert.self,
            Inspect.self,
            Synth.self,
            Tokenize.self,
            Score.self,
            Embed.self,
            Generate.self,
            Prune.self,
            Quantize.self,
            Recover.self,
            Evaluate.self,
            Energy.self,
            Sweep.self,
            ReportCmd.self,
        ]
    )

    /// Entry point: first make sure OpenBLAS runs the kernels this CPU can (see BLASCoreType)
    /// and that its idle threads sleep instead of spinning (see BLAS.sleepWhenIdle). Errors
    /// Foundation raises about files (a raw `NSCocoaErrorDomain Code=513` line otherwise) are
    /// reported as every other bad input is: `Error: FILE: problem`.
    static func main() {
        BLASCoreType.reexecIfGeneric()
        BLAS.sleepWhenIdle()
        do {
            var command = try parseAsRoot(NegativeNumbers.attach(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch {
            exit(withError: FileErrors.oneLine(error))
        }
    }
}
