import Foundation

/// Every `GREENPRUNE_*` variable GreenPrune honours, read from the process environment in one
/// place. The library takes its defaults from `GreenPruneEnvironment.process`, built once on
/// first use (the CLIs touch it at start-up); code that wants other values builds its own with
/// `init(_:)` and passes them down instead of changing the environment.
///
/// `GREENPRUNE_HDF5` is the one exception: the C loader of libhdf5 (CKernels/hdf5_runtime.c)
/// reads it itself, the first time an .h5 file is opened.
public struct GreenPruneEnvironment: Sendable, Equatable {
    /// `GREENPRUNE_HOME`: the cache of imported models and wheels (see `Paths.home`).
    public var home: String?
    /// `GREENPRUNE_DATA`: the evaluation data folder (see `Paths.dataDirectory`).
    public var data: String?
    /// `GREENPRUNE_REFERENCE`: the reference outputs folder (see `Paths.referenceDirectory`).
    public var reference: String?
    /// `GREENPRUNE_TASKS`: the folder of multiple-choice task descriptions (see `TaskRegistry`).
    public var tasks: String?
    /// `GREENPRUNE_SWEEP_BINARY`: the program a sweep runs its steps with (tests use a fake).
    public var sweepBinary: String?
    /// `GREENPRUNE_SLURM_BINARY`: the greenprune path a Slurm job array's steps run.
    public var slurmBinary: String?
    /// False when `GREENPRUNE_AMX=0`: float products stay on sgemm even where AMX tiles exist.
    public var amx: Bool
    /// False when `GREENPRUNE_INT16_DOT=0`: quantized products with float activations stay on
    /// sgemm even where the AVX-512 VNNI int16 kernel is the default (`KernelOptions.int16Dot`).
    public var int16Dot: Bool
    /// False when `GREENPRUNE_BF16_ATTENTION=0`: a model with bf16 weights on bf16 dot products
    /// keeps its attention in float32 (`KernelOptions.bf16Attention`).
    public var bf16Attention: Bool
    /// `GREENPRUNE_PROFILE=1`: `evaluate` prints seconds per forward phase after each task.
    public var profile: Bool
    /// `GREENPRUNE_NO_PROGRESS` set: no progress lines, whatever a command asks for.
    public var noProgress: Bool
    /// `GREENPRUNE_NO_REEXEC` set: the CLI does not re-execute itself with a better
    /// `OPENBLAS_CORETYPE` (see `BLASCoreType.reexecIfGeneric`).
    public var noReexec: Bool

    /// The values in `variables` (an environment such as `ProcessInfo.processInfo.environment`);
    /// an empty path variable counts as unset.
    public init(_ variables: [String: String]) {
        func path(_ name: String) -> String? { variables[name].flatMap { $0.isEmpty ? nil : $0 } }
        home = path("GREENPRUNE_HOME")
        data = path("GREENPRUNE_DATA")
        reference = path("GREENPRUNE_REFERENCE")
        tasks = path("GREENPRUNE_TASKS")
        sweepBinary = path("GREENPRUNE_SWEEP_BINARY")
        slurmBinary = variables["GREENPRUNE_SLURM_BINARY"]
        amx = variables["GREENPRUNE_AMX"] != "0"
        int16Dot = variables["GREENPRUNE_INT16_DOT"] != "0"
        bf16Attention = variables["GREENPRUNE_BF16_ATTENTION"] != "0"
        profile = variables["GREENPRUNE_PROFILE"] == "1"
        noProgress = variables["GREENPRUNE_NO_PROGRESS"] != nil
        noReexec = variables["GREENPRUNE_NO_REEXEC"] != nil
    }

    /// This process's values, read once.
    public static let process = GreenPruneEnvironment(ProcessInfo.processInfo.environment)
}
