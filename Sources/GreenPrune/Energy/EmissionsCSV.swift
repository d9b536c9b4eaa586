import Foundation

/// `emissions.csv` in CodeCarbon 3.x's layout (codecarbon `output_methods/emissions_data.py`,
/// `EmissionsData`): the same 38 columns in the same order and units, so tools that read
/// CodeCarbon's file read ours. Rows are appended; the header is written once.
///
/// Two columns cannot mean what they mean in CodeCarbon, for a Swift binary: `codecarbon_version`
/// holds the CodeCarbon release whose format and estimates the row follows (`codecarbonVersion`;
/// GreenPrune's own version is energy.json's `greenprune_version`), and `python_version` holds
/// `N/A` (no Python runs; lm-eval writes `N/A` for an absent library the same way).
public enum EmissionsCSV {
    /// The CodeCarbon release whose emissions.csv GreenPrune's rows follow.
    public static let codecarbonVersion = "3.3.2"

    /// Column names, in order. Units: duration s; emissions kg CO2eq; emissions_rate kg/s;
    /// *_power W; *_energy and energy_consumed kWh (PUE included); water_consumed L;
    /// ram_total_size and ram_used_gb GB (GiB, as psutil/1024³); *_percent %.
    public static let columns: [String] = [
        "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
        "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
        "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region",
        "os", "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model",
        "longitude", "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent",
        "gpu_utilization_percent", "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
    ]

    /// The report as one row of `columns`, values as strings (numbers in Python's `repr` form, as
    /// CodeCarbon's pandas writes them, full precision; unknown coordinates empty).
    public static func row(for r: EnergyReport) -> [String] {
        let cpu = r.component(.cpu), gpu = r.component(.gpu), ram = r.component(.ram)
        let gpuModel: String = {
            // CodeCarbon writes "2 x NVIDIA A100-SXM4-40GB" for identical GPUs.
            guard let first = r.gpuNames.first else { return "" }
            if r.gpuNames.allSatisfy({ $0 == first }) { return "\(r.gpuNames.count) x \(first)" }
            return r.gpuNames.joined(separator: ", ")
        }()
        let values: [String: String] = [
            "timestamp": r.timestamp, "project_name": r.projectName, "run_id": r.runID,
            "experiment_id": r.experimentID, "duration": num(r.durationS), "emissions": num(r.emissionsKg),
            "emissions_rate": num(r.durationS > 0 ? r.emissionsKg / r.durationS : 0),
            "cpu_power": num(cpu.averagePowerW), "gpu_power": num(gpu.averagePowerW), "ram_power": num(ram.averagePowerW),
            "cpu_energy": num(cpu.energyKWh), "gpu_energy": num(gpu.energyKWh), "ram_energy": num(ram.energyKWh),
            "energy_consumed": num(r.energyKWh), "water_consumed": num(0),
            "country_name": r.carbonIntensity.countryName, "country_iso_code": r.carbonIntensity.countryISO,
            "region": "", "cloud_provider": "", "cloud_region": "", "os": r.host.os, "python_version": "N/A",
            "codecarbon_version": codecarbonVersion, "cpu_count": String(r.host.threads),
            "cpu_model": r.host.cpuModel ?? "Unknown", "gpu_count": String(r.gpuNames.count), "gpu_model": gpuModel,
            "longitude": "", "latitude": "", "ram_total_size": num(r.host.ramTotalGB),
            "tracking_mode": r.trackingMode.rawValue, "cpu_utilization_percent": num(r.cpuUtilizationPercent),
            "gpu_utilization_percent": num(0), "ram_utilization_percent": num(r.ramUtilizationPercent),
            "ram_used_gb": num(r.ramUsedGB), "on_cloud": "N", "pue": num(r.pue), "wue": num(0),
        ]
        return columns.map { values[$0] ?? "" }
    }

    /// A float as Python prints it (`0.5`, `1.2e-05`, `100.0`); empty when not finite.
    static func num(_ x: Double) -> String {
        guard x.isFinite else { return "" }
        return PythonJSON.float(x)
    }

    /// One CSV line (RFC 4180: fields with commas, quotes or line breaks are quoted).
    public static func line(_ fields: [String]) -> String {
        fields.map { f in
            f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
        }.joined(separator: ",") + "\n"
    }

    /// Appends `row` to the CSV at `url`, writing the header first if the file is new or empty.
    ///
    /// Safe against crashes and concurrent writers: an exclusive `flock` on a sibling lock file
    /// serialises appenders (sweeps run steps in parallel), and the new content is written under
    /// a temporary name and renamed into place. A file whose header is not ours is kept aside as
    /// `<name>.bak-<timestamp>` (as CodeCarbon does) rather than appended to.
    public static func append(_ row: [String], to url: URL) throws {
        guard row.count == columns.count else {
            throw InputError(url.path, "emissions row has \(row.count) fields, expected \(columns.count)")
        }
        let lockPath = url.deletingLastPathComponent().appendingPathComponent("." + url.lastPathComponent + ".lock").path
        let fd = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw InputError(lockPath, "cannot create lock file: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw InputError(lockPath, "cannot lock: \(String(cString: strerror(errno)))") }
        }
        defer { flock(fd, LOCK_UN) }

        let header = line(columns)
        var existing = (try? Data(contentsOf: url)) ?? Data()
        if !existing.isEmpty {
            let text = String(decoding: existing, as: UTF8.self)
            let first = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            if first + "\n" != header && first + "\r\n" != header.replacingOccurrences(of: "\n", with: "\r\n") {
                let stamp = Int(Date().timeIntervalSince1970)
                let bak = url.deletingLastPathComponent().appendingPathComponent("\(url.lastPathComponent).bak-\(stamp)")
                try AtomicFile.write(existing, to: bak)
                FileHandle.standardError.write(Data("\(url.path): header differs from CodeCarbon 3.x's 38 columns; old file kept as \(bak.lastPathComponent)\n".utf8))
                existing = Data()
            } else if existing.last != UInt8(ascii: "\n") {
                existing.append(UInt8(ascii: "\n"))   // a previous writer's last line lacked its newline
            }
        }
        var out = existing.isEmpty ? Data(header.utf8) : existing
        out.append(Data(line(row).utf8))
        try AtomicFile.write(out, to: url)
    }

    /// Parses a CSV file written by `append` (RFC 4180 quoting) into rows of fields.
    public static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false, afterQuote = false
        var it = text.makeIterator()
        while let c = it.next() {
            if quoted {
                if c == "\"" { quoted = false; afterQuote = true } else { field.append(c) }
                continue
            }
            switch c {
            case "\"": if afterQuote { field.append("\"") }; quoted = true; afterQuote = false
            case ",": row.append(field); field = ""; afterQuote = false
            case "\n": row.append(field); rows.append(row); row = []; field = ""; afterQuote = false
            case "\r": continue
            default: field.append(c); afterQuote = false
            }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}
