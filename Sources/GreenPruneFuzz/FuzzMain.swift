import Foundation
import GreenPrune

#if GREENPRUNE_LIBFUZZER
/// The target and scratch folder of this process, chosen by `GREENPRUNE_FUZZ_TARGET`: libFuzzer
/// calls plain C functions, and depending on the link its own `main` may run instead of ours.
nonisolated(unsafe) private var fuzzState: (target: FuzzTarget, scratch: FuzzScratch)?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> Int32 {
    if argc.pointee == 2, let a = argv.pointee[1], String(cString: a) == "--task-files" { GreenPruneFuzz.printTaskFiles() }
    let name = ProcessInfo.processInfo.environment["GREENPRUNE_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget.named(name) else {
        FileHandle.standardError.write(Data("greenprune-fuzz: set GREENPRUNE_FUZZ_TARGET to one of \(FuzzTarget.all.map(\.name).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    do { fuzzState = (target, try FuzzScratch()) } catch {
        FileHandle.standardError.write(Data("greenprune-fuzz: cannot create a scratch folder: \(error)\n".utf8))
        exit(2)
    }
    atexit { fuzzState?.scratch.remove() }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    guard let (target, scratch) = fuzzState else { return 0 }
    FuzzRun.one(target, bytes.map { Data(bytes: $0, count: count) } ?? Data(), scratch)
    return 0
}

/// libFuzzer's driver, for when our `main` is the one that runs.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32
#endif

/// `greenprune-fuzz TARGET FILE|DIR...` replays inputs through one reader; built with
/// `-sanitize=fuzzer -DGREENPRUNE_LIBFUZZER` it is `GREENPRUNE_FUZZ_TARGET=TARGET greenprune-fuzz
/// [libFuzzer flags] [CORPUS...]`.
@main
struct GreenPruneFuzz {
    static func usage() -> String {
        "usage: greenprune-fuzz TARGET FILE|DIR...\ntargets:\n"
            + FuzzTarget.all.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
    }

    /// For the seed builder (scripts/fuzz-seeds.py): the `taskdata` selector byte of each task.
    static func printTaskFiles() -> Never {
        do {
            for (i, entry) in try FuzzTaskData.tasks().enumerated() {
                switch entry {
                case .language(let t): print("\(i)\t\(FuzzTaskData.files(of: t).first ?? "")")
                case .stsb: print("\(i)\t\(STSBenchmark.file)")
                }
            }
        } catch {
            FileHandle.standardError.write(Data("greenprune-fuzz: \(error)\n".utf8))
            exit(1)
        }
        exit(0)
    }

    static func main() {
        let args = CommandLine.arguments
        if args.count == 2, args[1] == "--task-files" { printTaskFiles() }
        #if GREENPRUNE_LIBFUZZER
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        var argc = Int32(args.count)
        let status = argv.withUnsafeMutableBufferPointer { buf -> Int32 in
            var base = buf.baseAddress!
            return LLVMFuzzerRunDriver(&argc, &base) { fuzzerTestOneInput($0, $1) }
        }
        exit(status)
        #else
        guard args.count >= 2, let target = FuzzTarget.named(args[1]) else {
            FileHandle.standardError.write(Data((usage() + "\n").utf8))
            exit(args.count >= 2 && args[1] == "--list" ? 0 : 2)
        }
        let scratch: FuzzScratch
        do { scratch = try FuzzScratch() } catch {
            FileHandle.standardError.write(Data("greenprune-fuzz: cannot create a scratch folder: \(error)\n".utf8))
            exit(2)
        }
        defer { scratch.remove() }
        exit(FuzzRun.replay(target, paths: Array(args.dropFirst(2)), scratch: scratch))
        #endif
    }
}
