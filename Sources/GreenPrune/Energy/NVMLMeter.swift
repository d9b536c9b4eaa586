import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// NVIDIA's management library, opened at run time with `dlopen` so GreenPrune has no build-time
/// dependency on CUDA. Only the few entry points the meter needs are resolved (NVML API reference,
/// docs.nvidia.com/deploy/nvml-api): all return `nvmlReturn_t` (0 = NVML_SUCCESS,
/// 3 = NVML_ERROR_NOT_SUPPORTED); a device handle is an opaque pointer.
public final class NVMLLibrary {
    typealias InitFn = @convention(c) () -> Int32
    typealias CountFn = @convention(c) (UnsafeMutablePointer<UInt32>) -> Int32
    typealias HandleFn = @convention(c) (UInt32, UnsafeMutablePointer<OpaquePointer?>) -> Int32
    typealias NameFn = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>, UInt32) -> Int32
    /// Energy since the driver was loaded, in mJ (Volta and newer).
    typealias EnergyFn = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt64>) -> Int32
    /// Current board power draw, in mW.
    typealias PowerFn = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt32>) -> Int32

    public static let success: Int32 = 0
    public static let notSupported: Int32 = 3
    /// The soname the driver installs.
    public static let defaultPath = "libnvidia-ml.so.1"

    public let path: String
    private let handle: UnsafeMutableRawPointer
    let initialize: InitFn
    let shutdown: InitFn
    let deviceCount: CountFn
    let handleByIndex: HandleFn
    let deviceName: NameFn
    let totalEnergy: EnergyFn
    let powerUsage: PowerFn
    private var open = true

    /// Opens the library at `path` (a soname searched like `dlopen` does, or a file path) and
    /// calls `nvmlInit_v2`. Throws when the library or a symbol is missing or init fails.
    public init(path: String = NVMLLibrary.defaultPath) throws {
        self.path = path
        guard let h = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let why = dlerror().map { String(cString: $0) } ?? "not found"
            throw InputError(path, "cannot load NVML: \(why)")
        }
        handle = h
        func sym<T>(_ name: String, _ type: T.Type) throws -> T {
            guard let p = dlsym(h, name) else {
                dlclose(h)
                throw InputError(path, "NVML library lacks \(name)")
            }
            return unsafeBitCast(p, to: type)
        }
        initialize = try sym("nvmlInit_v2", InitFn.self)
        shutdown = try sym("nvmlShutdown", InitFn.self)
        deviceCount = try sym("nvmlDeviceGetCount_v2", CountFn.self)
        handleByIndex = try sym("nvmlDeviceGetHandleByIndex_v2", HandleFn.self)
        deviceName = try sym("nvmlDeviceGetName", NameFn.self)
        totalEnergy = try sym("nvmlDeviceGetTotalEnergyConsumption", EnergyFn.self)
        powerUsage = try sym("nvmlDeviceGetPowerUsage", PowerFn.self)
        let rc = initialize()
        guard rc == NVMLLibrary.success else {
            dlclose(h)
            throw InputError(path, "nvmlInit_v2 failed with NVML error \(rc)")
        }
    }

    deinit {
        if open {
            _ = shutdown()
            dlclose(handle)
        }
    }

    /// Handles and names of every GPU NVML sees.
    func devices() throws -> [(handle: OpaquePointer?, name: String)] {
        var n: UInt32 = 0
        let rc = deviceCount(&n)
        guard rc == NVMLLibrary.success else { throw InputError(path, "nvmlDeviceGetCount_v2 failed with NVML error \(rc)") }
        var out: [(OpaquePointer?, String)] = []
        for i in 0..<min(n, 64) {
            var h: OpaquePointer? = nil
            let rc = handleByIndex(i, &h)
            guard rc == NVMLLibrary.success else { throw InputError(path, "nvmlDeviceGetHandleByIndex_v2(\(i)) failed with NVML error \(rc)") }
            var buf = [CChar](repeating: 0, count: 96)
            let name = deviceName(h, &buf, UInt32(buf.count - 1)) == NVMLLibrary.success
                ? String(cString: buf) : "GPU \(i)"
            out.append((h, name))
        }
        return out
    }
}

/// GPU energy from NVML, one channel per GPU.
///
/// Where `nvmlDeviceGetTotalEnergyConsumption` works (Volta and newer) the energy is the delta of
/// that mJ counter since `start`; elsewhere the board power (`nvmlDeviceGetPowerUsage`, mW) is
/// read at every sample and integrated with the trapezoidal rule,
/// E += (P_prev + P_now) / 2 · (t_now − t_prev).
public final class NVMLMeter: EnergyMeter {
    public let library: NVMLLibrary
    /// GPU names as NVML reports them (e.g. `NVIDIA H200`).
    public let deviceNames: [String]
    public let channels: [MeterChannel]
    public private(set) var notes: [String] = []
    private let handles: [OpaquePointer?]
    private let usesCounter: [Bool]
    private var startMJ: [UInt64]
    private var lastPowerW: [Double]
    private var lastTime: Double = 0
    private var integratedJ: [Double]

    /// Opens NVML (`libraryPath` or the driver's soname) and probes each GPU's energy counter.
    /// Throws when NVML cannot be loaded or sees no GPU.
    public init(libraryPath: String? = nil) throws {
        library = try NVMLLibrary(path: libraryPath ?? NVMLLibrary.defaultPath)
        let devs = try library.devices()
        guard !devs.isEmpty else { throw InputError(library.path, "NVML sees no GPU") }
        handles = devs.map(\.handle)
        deviceNames = devs.map(\.name)
        // Probe the energy counter once; the value read here is not used as the baseline.
        var counter: [Bool] = []
        for h in handles {
            var mj: UInt64 = 0
            counter.append(library.totalEnergy(h, &mj) == NVMLLibrary.success)
        }
        usesCounter = counter
        channels = devs.enumerated().map { i, d in
            MeterChannel(name: "gpu\(i)", component: .gpu,
                         method: counter[i] ? "nvml:total-energy" : "nvml:power-trapezoid", isEstimate: false)
        }
        startMJ = Array(repeating: 0, count: devs.count)
        lastPowerW = Array(repeating: 0, count: devs.count)
        integratedJ = Array(repeating: 0, count: devs.count)
    }

    public func start(at time: Double) throws {
        for i in handles.indices {
            if usesCounter[i] {
                startMJ[i] = try energyMJ(i)
            } else {
                lastPowerW[i] = try powerW(i)
            }
            integratedJ[i] = 0
        }
        lastTime = time
    }

    public func read(at time: Double) throws -> [Double] {
        let dt = max(time - lastTime, 0)
        var out = [Double](repeating: 0, count: handles.count)
        for i in handles.indices {
            if usesCounter[i] {
                let now = try energyMJ(i)
                // The counter only resets with the driver; a smaller value means a reload.
                out[i] = now >= startMJ[i] ? Double(now - startMJ[i]) * 1e-3 : integratedJ[i]
                if now < startMJ[i], notes.count < 20 {
                    notes.append("gpu\(i): NVML energy counter went backwards (driver reloaded?); energy held at its last value")
                }
                integratedJ[i] = out[i]
            } else {
                let p = try powerW(i)
                integratedJ[i] += 0.5 * (lastPowerW[i] + p) * dt
                lastPowerW[i] = p
                out[i] = integratedJ[i]
            }
        }
        lastTime = time
        return out
    }

    private func energyMJ(_ i: Int) throws -> UInt64 {
        var mj: UInt64 = 0
        let rc = library.totalEnergy(handles[i], &mj)
        guard rc == NVMLLibrary.success else { throw InputError(library.path, "nvmlDeviceGetTotalEnergyConsumption(gpu\(i)) failed with NVML error \(rc)") }
        return mj
    }

    private func powerW(_ i: Int) throws -> Double {
        var mw: UInt32 = 0
        let rc = library.powerUsage(handles[i], &mw)
        guard rc == NVMLLibrary.success else { throw InputError(library.path, "nvmlDeviceGetPowerUsage(gpu\(i)) failed with NVML error \(rc)") }
        return Double(mw) * 1e-3
    }
}
