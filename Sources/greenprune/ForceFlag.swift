import ArgumentParser

/// `--force`, for the commands that write a model directory (or file) at `--out`: an existing
/// non-empty output is refused without it (see `OutputTarget`).
struct ForceFlag: ParsableArguments {
    @Flag(help: "Replace an existing non-empty --out. Never allowed for the input, a folder holding it, or the current directory.")
    var force = false
}
