import Foundation
import Testing
import GreenPrune

/// Each task's request construction and metric arithmetic on tiny hand-written files, and the
/// errors bad files give.
@Suite struct EvaluationTaskTests {
    func docs(_ task: String, _ files: [String: String]) throws -> [TaskDocument] {
        let dir = try TempDataDirectory(files)
        return try languageTask(task).documents(TaskSetup(dataDirectory: dir.url, tokenizer: CharTokenizer()))
    }

    @Test func registryHoldsEveryTask() throws {
        let names = try taskRegistry().names
        for n in ["wikitext", "wikitext2_chunked", "ptb_chunked", "lambada_openai", "hellaswag", "piqa", "arc_easy",
                  "arc_challenge", "boolq", "winogrande", "openbookqa", "stsb", "embedding_drift", "output_drift"] {
            #expect(names.contains(n), "\(n) missing")
        }
        #expect(throws: InputError.self) { try taskRegistry().task("nope") }
    }

    @Test func hellaswagRequests() throws {
        let d = try docs("hellaswag", ["hellaswag/hellaswag_val_full.txt": "Ctx: a man. he\n2\nruns.\nsits.\neats.\nsleeps.\n"])
        #expect(d.count == 1 && d[0].gold == 2)
        #expect(d[0].requests == ["runs.", "sits.", "eats.", "sleeps."].map { .loglikelihood(context: "Ctx: a man. he", continuation: " " + $0) })
        #expect(d[0].choices == ["runs.", "sits.", "eats.", "sleeps."])
    }

    @Test func piqaRequestsUseTheLabelsFile() throws {
        let d = try docs("piqa", [
            "piqa/valid.jsonl": #"{"goal": "Open a jar", "sol1": "twist the lid", "sol2": "kick it"}"# + "\n" + #"{"goal": "g", "sol1": "x ", "sol2": "y"}"# + "\n",
            "piqa/valid-labels.lst": "0\n1\n",
        ])
        #expect(d.map(\.gold) == [0, 1])
        #expect(d[0].requests == [.loglikelihood(context: "Question: Open a jar\nAnswer:", continuation: " twist the lid"),
                                  .loglikelihood(context: "Question: Open a jar\nAnswer:", continuation: " kick it")])
        // acc_norm counts the choice's own characters, its trailing space included.
        #expect(d[1].choices == ["x ", "y"])
    }

    @Test func arcBoolqOpenbookqaRequests() throws {
        let line = #"{"query": "Question: Why?", "choices": ["A", "B c"], "gold": 1}"#
        for task in ["arc_easy", "arc_challenge"] {
            let file = task == "arc_easy" ? "arc/arc_easy_test.jsonl" : "arc/arc_challenge_test.jsonl"
            let d = try docs(task, [file: line + "\n"])
            #expect(d[0].requests == [.loglikelihood(context: "Question: Why?\nAnswer:", continuation: " A"),
                                      .loglikelihood(context: "Question: Why?\nAnswer:", continuation: " B c")])
            #expect(d[0].gold == 1)
        }
        let b = try docs("boolq", ["boolq/boolq_validation.jsonl": #"{"query": "Passage: p\nQuestion: q?", "choices": ["no", "yes"], "gold": 0}"# + "\n"])
        #expect(b[0].requests == [.loglikelihood(context: "Passage: p\nQuestion: q?\nAnswer:", continuation: " no"),
                                  .loglikelihood(context: "Passage: p\nQuestion: q?\nAnswer:", continuation: " yes")])
        #expect(try languageTask("boolq").metrics.map(\.name) == ["acc"])
        let o = try docs("openbookqa", ["openbookqa/openbookqa_test.jsonl": #"{"query": "Fog is", "choices": ["wet", "dry"], "gold": 0}"# + "\n"])
        #expect(o[0].requests == [.loglikelihood(context: "Fog is", continuation: " wet"),
                                  .loglikelihood(context: "Fog is", continuation: " dry")])
    }

    @Test func winograndeScoresTheSameContinuationAfterEachContext() throws {
        let d = try docs("winogrande", ["winogrande/winogrande_dev.jsonl":
            #"{"context_options": ["Sarah was better so Sarah", "Sarah was better so Maria"], "continuation": "won.", "gold": 1}"# + "\n"])
        #expect(d[0].requests == [.loglikelihood(context: "Sarah was better so Sarah", continuation: " won."),
                                  .loglikelihood(context: "Sarah was better so Maria", continuation: " won.")])
        #expect(try languageTask("winogrande").metrics.map(\.name) == ["acc"])
    }

    @Test func multipleChoiceMetricsFromTheDummyModel() throws {
        // Char tokenizer + successor bigram: the continuation " bc" after context "a" scores
        // " " after "a" (no), "b" after " " (no), "c" after "b" (yes); " xyz" scores y, z as
        // successors. ll(" bc") = −3z + 2... computed below in closed form.
        let dir = try TempDataDirectory(["openbookqa/openbookqa_test.jsonl": #"{"query": "a", "choices": ["bc", "xyz"], "gold": 0}"# + "\n"])
        let task = try languageTask("openbookqa")
        let ev = Evaluator(model: DummyLM(), tokenizer: CharTokenizer(), showProgress: false)
        let out = try ev.run(task, setup: TaskSetup(dataDirectory: dir.url))
        let z = log(exp(2.0) + 511)
        let llBC = (-z) + (-z) + (2 - z)            // " ", "b", "c"
        let llXYZ = (-z) + (-z) + 2 * (2 - z)       // " ", "x", "y", "z"
        #expect(abs(out.answers[0][0].loglikelihood - llBC) < 1e-4)
        #expect(abs(out.answers[0][1].loglikelihood - llXYZ) < 1e-4)
        // acc: llBC > llXYZ (one fewer unlikely token) → gold 0 right. acc_norm: llBC/2 vs llXYZ/3.
        #expect(out.values["acc"]?.value == 1)
        let norm: Double = llBC / 2 > llXYZ / 3 ? 1 : 0
        #expect(out.values["acc_norm"]?.value == norm)
    }

    @Test func lambadaAccIsAllGreedyAndPerplexityIsExpMean() throws {
        // Context "ab", continuation " cd" vs "bc" (greedy after the moved space? no: " " is
        // not a successor of "b"), and "abc" + " " + ... — use a context ending in a space-free
        // word whose continuation is all successors: "x" + " " is never greedy, so acc = 0.
        let dir = try TempDataDirectory(["lambada_openai/lambada_openai_test.jsonl":
            #"{"context": "ab", "continuation": "cd"}"# + "\n" + #"{"context": "xy", "continuation": "q"}"# + "\n"])
        let ev = Evaluator(model: DummyLM(), tokenizer: CharTokenizer(), showProgress: false)
        let out = try ev.run(LambadaTask(), setup: TaskSetup(dataDirectory: dir.url))
        let z = log(exp(2.0) + 511)
        let ll0 = -z + -z + (2 - z)   // " " after b, c after " ", d after c
        let ll1 = -z + -z             // " " after y, q after " "
        #expect(abs(out.answers[0][0].loglikelihood - ll0) < 1e-4)
        // Relative 1e-5: the log-probabilities are float32.
        #expect(abs((out.values["perplexity"]?.value ?? 0) / exp(-(ll0 + ll1) / 2) - 1) < 1e-5)
        #expect(out.values["acc"]?.value == 0)
        #expect(out.documents[0].requests == [.loglikelihood(context: "ab", continuation: " cd")])
    }

    @Test func lambadaGreedyContinuationCountsAsCorrect() throws {
        // " " remapped to the id after "x" (123 + 1 = 124): in "ax" + " z", the space follows x
        // and z (125) follows the space, so every continuation token is greedy: acc = 1.
        let tok = CharTokenizer(remap: [" ": 124])
        let dir = try TempDataDirectory(["lambada_openai/lambada_openai_test.jsonl": #"{"context": "ax", "continuation": "z"}"# + "\n"])
        let ev = Evaluator(model: DummyLM(), tokenizer: tok, showProgress: false)
        let out = try ev.run(LambadaTask(), setup: TaskSetup(dataDirectory: dir.url))
        #expect(out.answers[0][0].tokenCount == 2 && out.answers[0][0].isGreedy)
        #expect(out.values["acc"]?.value == 1)
        let z = log(exp(2.0) + 511)
        #expect(abs(out.answers[0][0].loglikelihood - 2 * (2 - z)) < 1e-4)
    }

    @Test func wikitextPagesAndWeights() throws {
        let raw = " \n = Title A = \n \n Body one . \n = = Sub = = \n Line @-@ two \n = Title B = \n Last \n"
        let d = try docs("wikitext", ["wikitext2/wiki.test.raw": raw])
        #expect(d.count == 2)
        #expect(d[0].fields["page"] == " = Title A = \n \n Body one . \n = = Sub = = \n Line @-@ two \n")
        #expect(d[1].fields["page"] == " = Title B = \n Last \n")
        // words: len(re.split(r"\s+", " = Title B = \n Last \n")) = ['', '=', 'Title', 'B', '=', 'Last', ''] = 7
        #expect(d[1].weights["words"] == 7)
        #expect(d[1].weights["bytes"] == 21)
        // lm-eval's detokenizer output (checked with Python): the leading space stays.
        #expect(d[0].requests == [.loglikelihoodRolling(text: " = Title A =\n\nBody one.\n== Sub ==\nLine-two\n")])
    }

    @Test func wikitextMetricsFromTheDummyModel() throws {
        let dir = try TempDataDirectory(["wikitext2/wiki.test.raw": " = AB = \n"])
        let ev = Evaluator(model: DummyLM(maxLength: 3), tokenizer: CharTokenizer(), showProgress: false)
        let out = try ev.run(WikitextTask(), setup: TaskSetup(dataDirectory: dir.url))
        // detok(" = AB = \n") = " = AB =\n" (the " \n" → "\n" rule), 8 chars; successor pairs: A→B only.
        #expect(out.documents[0].requests == [.loglikelihoodRolling(text: " = AB =\n")])
        let z = log(exp(2.0) + 511)
        let ll = 7 * -z + (2 - z)
        #expect(abs(out.answers[0][0].loglikelihood - ll) < 1e-4)
        #expect(out.answers[0][0].tokenCount == 8)
        // words = len(re.split(r"\s+", " = AB = \n")) = 5, bytes 9. Relative 1e-5 (float32 log-probs).
        #expect(abs((out.values["word_perplexity"]?.value ?? 0) / exp(-ll / 5) - 1) < 1e-5)
        #expect(abs((out.values["byte_perplexity"]?.value ?? 0) / exp(-ll / 9) - 1) < 1e-5)
        #expect(abs((out.values["bits_per_byte"]?.value ?? 0) - (-ll / (9 * log(2)))) < 1e-4)
    }

    @Test func chunkedWindowsAndPerplexity() throws {
        // PTB: lines stripped, joined by "\n\n": "ab\n\ncd" = 6 tokens → windows of 4: one window.
        let dir = try TempDataDirectory(["ptb/ptb.test.txt": " ab \n cd \n"])
        let task = ChunkedPerplexityTask(.ptb)
        #expect(task.corpusText(" ab \n cd \n") == "ab\n\ncd")
        let ev = Evaluator(model: DummyLM(), tokenizer: CharTokenizer(), showProgress: false)
        let out = try ev.run(task, setup: TaskSetup(dataDirectory: dir.url, sequenceLength: 4))
        #expect(out.documents.count == 1)
        #expect(out.documents[0].requests == [.tokenWindow(tokens: [100, 101, 13, 13])])
        let z = log(exp(2.0) + 511)
        let ll = (2 - z) + -z + -z   // b after a; \n after b; \n after \n
        #expect(abs((out.values["perplexity"]?.value ?? 0) / exp(-ll / 3) - 1) < 1e-5)
        #expect(ChunkedPerplexityTask.windows(Array(0 ..< 10), length: 4) == [[0, 1, 2, 3], [4, 5, 6, 7]])
        #expect(ChunkedPerplexityTask(.wikitext2).corpusText(" \n = A = \n x\n") == "\n\n = A = \n\n\n x\n")
    }

    @Test func limitTakesTheFirstDocuments() throws {
        let lines = (0 ..< 5).map { #"{"query": "q\#($0)", "choices": ["a", "b"], "gold": 0}"# }.joined(separator: "\n")
        let dir = try TempDataDirectory(["openbookqa/openbookqa_test.jsonl": lines])
        let ev = Evaluator(model: DummyLM(), tokenizer: CharTokenizer(), showProgress: false)
        let out = try ev.run(try languageTask("openbookqa"), setup: TaskSetup(dataDirectory: dir.url), limit: 2)
        #expect(out.documents.map(\.id) == [0, 1] && out.originalCount == 5)
        #expect(out.documents[1].fields["query"] == "q1")
    }

    // MARK: bad input

    func error(_ task: String, _ files: [String: String]) -> String {
        do { _ = try docs(task, files); return "" } catch { return "\(error)" }
    }

    @Test func malformedJsonLineNamesFileAndLine() {
        let e = error("arc_easy", ["arc/arc_easy_test.jsonl": #"{"query": "q", "choices": ["a"], "gold": 0}"# + "\n{oops\n"])
        #expect(e.contains("arc_easy_test.jsonl:2") && e.contains("malformed JSON"))
    }

    @Test func goldOutOfRangeNamesFileAndLine() {
        let e = error("arc_easy", ["arc/arc_easy_test.jsonl": #"{"query": "q", "choices": ["a", "b"], "gold": 2}"# + "\n"])
        #expect(e.contains("arc_easy_test.jsonl:1") && e.contains("out of range"))
        let h = error("hellaswag", ["hellaswag/hellaswag_val_full.txt": "c\n4\na\nb\nc\nd\n"])
        #expect(h.contains("hellaswag_val_full.txt:1") && h.contains("out of range"))
    }

    @Test func emptyMissingAndIncompleteFiles() {
        #expect(error("openbookqa", ["openbookqa/openbookqa_test.jsonl": ""]).contains("empty file"))
        #expect(error("openbookqa", [:]).contains("openbookqa_test.jsonl: data file not found"))
        let h = error("hellaswag", ["hellaswag/hellaswag_val_full.txt": "c\n0\na\nb\nc\nd\nc2\n1\n"])
        #expect(h.contains("hellaswag_val_full.txt:7") && h.contains("incomplete"))
        let p = error("piqa", ["piqa/valid.jsonl": #"{"goal": "g", "sol1": "a", "sol2": "b"}"# + "\n", "piqa/valid-labels.lst": "0\n1\n"])
        #expect(p.contains("valid-labels.lst") && p.contains("2 labels for 1 documents"))
        let f = error("arc_easy", ["arc/arc_easy_test.jsonl": #"{"query": "q", "gold": 0}"# + "\n"])
        #expect(f.contains("arc_easy_test.jsonl:1") && f.contains("choices"))
    }

    @Test func badTaskDescriptionsAreErrors() throws {
        let dir = try TempDataDirectory(["t/bad.yaml": "task: x\nfile: f\ndoc_to_text: a\ndoc_to_choice: [a]\ndoc_to_target: '0'\nmetric_list: [f1]\n",
                                         "u/nochoice.yaml": "task: y\nfile: f\ndoc_to_target: '0'\n"])
        #expect(throws: InputError.self) { try TaskRegistry(specDirectory: dir.url.appendingPathComponent("t")) }
        do {
            _ = try TaskRegistry(specDirectory: dir.url.appendingPathComponent("u"))
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("nochoice.yaml") && "\(error)".contains("doc_to_choice"))
        }
    }

    @Test func aJsonDescriptionWorksToo() throws {
        let dir = try TempDataDirectory([
            "tasks/mine.json": #"{"task": "mine", "file": "m.jsonl", "doc_to_text": "Q: {{q}}", "doc_to_choice": ["{{a}}", "{{b}}"], "doc_to_target": "{{g}}", "target_delimiter": "", "metric_list": ["acc"]}"#,
            "data/m.jsonl": #"{"q": "x", "a": "1", "b": "2", "g": 1}"# + "\n",
        ])
        let reg = try TaskRegistry(specDirectory: dir.url.appendingPathComponent("tasks"))
        guard case let .language(t) = try reg.task("mine") else { Issue.record("not a language task"); return }
        let d = try t.documents(TaskSetup(dataDirectory: dir.url.appendingPathComponent("data")))
        #expect(d[0].requests == [.loglikelihood(context: "Q: x", continuation: "1"), .loglikelihood(context: "Q: x", continuation: "2")])
    }
}
