import Foundation
import GreenPrune

#if GREENPRUNE_LIBFUZZER
/// libFuzzer's entry point for a program that keeps its own `main` (SwiftPM gives every
/// executable one): it parses the libFuzzer flags in argv and calls back once per input.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The target and scratch folder of this process (a C callback cannot capture them).
nonisolated(unsafe) private var fuzzTarget: FuzzTarget?
nonisolated(unsafe) private var fuzzScratch: FuzzScratch?
#endif

/// `greenprune-fuzz TARGET FILE|DIR...` replays inputs through one reader; built with
/// `-sanitize=fuzzer -DGREENPRUNE_LIBFUZZER` it is `greenprune-fuzz TARGET [libFuzzer flags] [CORPUS...]`.
@main
struct GreenPruneFuzz {
    static func usage() -> String {
        "usage: greenprune-fuzz TARGET FILE|DIR...\ntargets:\n"
            + FuzzTarget.all.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
    }

    static func main() {
        let args = CommandLine.arguments
        if args.count == 2, args[1] == "--task-files" {
            // For the seed builder (scripts/fuzz-seeds.py): the `taskdata` selector byte of each task.
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
        #if GREENPRUNE_LIBFUZZER
        fuzzTarget = target
        fuzzScratch = scratch
        // libFuzzer sees argv without the target name.
        var argv: [UnsafeMutablePointer<CChar>?] = ([args[0]] + args.dropFirst(2)).map { strdup($0) } + [nil]
        var argc = Int32(argv.count - 1)
        let status = argv.withUnsafeMutableBufferPointer { buf -> Int32 in
            var base = buf.baseAddress!
            return LLVMFuzzerRunDriver(&argc, &base) { bytes, count in
                guard let target = fuzzTarget, let scratch = fuzzScratch else { return 0 }
                let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
                FuzzRun.one(target, data, scratch)
                return 0
            }
        }
        scratch.remove()
        exit(status)
        #else
        exit(FuzzRun.replay(target, paths: Array(args.dropFirst(2)), scratch: scratch))
        #endif
    }
}
