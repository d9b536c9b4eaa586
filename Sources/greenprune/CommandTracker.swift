import Foundation
import GreenPrune

extension EnergyTracker {
    /// The tracker a command that builds a model (prune, recover) runs its work under, started;
    /// nil when the meters cannot be read (the command then runs unmetered).
    static func startedForCommand(_ name: String, quiet: Bool) throws -> EnergyTracker? {
        var options = EnergyOptions()
        options.projectName = "greenprune-" + name
        options.announce = !quiet
        let tracker = try? EnergyTracker(options)
        try tracker?.start()
        return tracker
    }
}
