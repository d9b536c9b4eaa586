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
            // One line per subcommand, each in its own file.
            Sweep.self,
            ReportCmd.self,
            Convert.self,
            Tokenize.self,
            Inspect.self,
            Score.self,
            Embed.self,
            Generate.self,
            Bench.self,
            Energy.self,
            BenchEnergy.self,
            Quantize.self,
            QuantBench.self,
        ]
    )
}
