import ArgumentParser

/// `--data-dir`: where the data files (task sets, the C4 calibration sample) are.
struct DataOptions: ParsableArguments {
    @Option(help: "Data directory (default $GREENPRUNE_DATA or ../shared/data).")
    var dataDir: String?
}
