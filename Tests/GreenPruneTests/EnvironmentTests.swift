import Foundation
import GreenPrune
import Testing

/// The `GREENPRUNE_*` variables as `GreenPruneEnvironment` reads them (the meanings its
/// documentation and README give), from explicit dictionaries: no test changes the process
/// environment.
@Suite struct EnvironmentTests {
    @Test func emptyEnvironmentMeansDefaults() {
        let e = GreenPruneEnvironment([:])
        #expect(e.home == nil && e.data == nil && e.reference == nil && e.tasks == nil)
        #expect(e.sweepBinary == nil && e.slurmBinary == nil)
        #expect(e.amx && !e.profile && !e.noProgress && !e.noReexec)
    }

    @Test func valuesAreTyped() {
        let e = GreenPruneEnvironment([
            "GREENPRUNE_HOME": "/h", "GREENPRUNE_DATA": "/d", "GREENPRUNE_REFERENCE": "/r",
            "GREENPRUNE_TASKS": "/t", "GREENPRUNE_SWEEP_BINARY": "/fake", "GREENPRUNE_SLURM_BINARY": "/gp",
            "GREENPRUNE_AMX": "0", "GREENPRUNE_PROFILE": "1", "GREENPRUNE_NO_PROGRESS": "", "GREENPRUNE_NO_REEXEC": "1",
            "HOME": "/elsewhere",
        ])
        #expect(e.home == "/h" && e.data == "/d" && e.reference == "/r" && e.tasks == "/t")
        #expect(e.sweepBinary == "/fake" && e.slurmBinary == "/gp")
        #expect(!e.amx && e.profile && e.noProgress && e.noReexec)
    }

    /// An empty path is unset (the fallback applies); only "0" turns AMX off and only "1" turns
    /// profiling on.
    @Test func emptyPathsAndOtherFlagValues() {
        let e = GreenPruneEnvironment(["GREENPRUNE_HOME": "", "GREENPRUNE_DATA": "", "GREENPRUNE_TASKS": "",
                                       "GREENPRUNE_AMX": "1", "GREENPRUNE_PROFILE": "yes"])
        #expect(e.home == nil && e.data == nil && e.tasks == nil)
        #expect(e.amx && !e.profile)
    }

    /// The process defaults follow this process's variables (scripts/test.sh sets
    /// GREENPRUNE_DATA and GREENPRUNE_REFERENCE), and `Paths` reads them.
    @Test func processValuesReachPaths() {
        let env = ProcessInfo.processInfo.environment
        #expect(GreenPruneEnvironment.process == GreenPruneEnvironment(env))
        if let d = env["GREENPRUNE_DATA"], !d.isEmpty { #expect(Paths.dataDirectory().path == URL(fileURLWithPath: d).path) }
        #expect(Paths.dataDirectory("/x").path == "/x")
        #expect(KernelOptions.standard.amx == (KernelOptions.amxAvailable && env["GREENPRUNE_AMX"] != "0"))
    }
}
