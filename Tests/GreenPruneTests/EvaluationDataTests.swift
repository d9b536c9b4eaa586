import Foundation
import Testing
import GreenPrune

/// The task readers on the real files of ../shared/data: document counts as PROVENANCE.txt
/// states them, first documents as the files hold them, and the wikitext/chunked texts against
/// scripts/eval-fixtures.py (Python's own `re` and lm-eval's detokenizer).
@Suite struct EvaluationDataTests {
    func data() throws -> URL {
        guard let d = sharedData() else {
            throw InputError(Paths.dataDirectory().path, "evaluation data missing: set GREENPRUNE_DATA to shared/data")
        }
        return d
    }

    func documents(_ task: String) throws -> [TaskDocument] {
        try languageTask(task).documents(TaskSetup(dataDirectory: try data(), tokenizer: CharTokenizer()))
    }

    @Test(arguments: [("hellaswag", 10042), ("piqa", 1838), ("arc_easy", 2376), ("arc_challenge", 1172),
                      ("boolq", 3270), ("openbookqa", 500), ("winogrande", 1267), ("lambada_openai", 5153),
                      ("wikitext", 62)])
    func documentCounts(task: String, count: Int) throws {
        let d = try documents(task)
        #expect(d.count == count)
        #expect(d.allSatisfy { doc in doc.gold.map { doc.requests.indices.contains($0) } ?? true })
    }

    @Test func firstDocuments() throws {
        let h = try documents("hellaswag")[0]
        #expect(h.gold == 3)
        #expect(h.requests[0] == .loglikelihood(context: "Roof shingle removal: A man is sitting on a roof. he",
                                                continuation: " is using wrap to wrap a pair of skis."))
        #expect(h.requests[3] == .loglikelihood(context: "Roof shingle removal: A man is sitting on a roof. he",
                                                continuation: " starts pulling up roofing on a roof."))
        let p = try documents("piqa")
        #expect(p[0].gold == 0 && p[1].gold == 1)
        #expect(p[0].requests[0] == .loglikelihood(context: "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:",
                                                   continuation: " Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips, you will also need to supply it with a water bottle and a food dish."))
        // The file's own double space and trailing space are kept in the choice.
        #expect(p[1].choices == ["replace drawer with bobby pin ", "finish, woodgrain with  bobby pin "])
        let a = try documents("arc_easy")[0]
        #expect(a.gold == 0)
        #expect(a.requests[0] == .loglikelihood(context: "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:",
                                                continuation: " Sunlight is the source of energy for nearly all ecosystems."))
        let b = try documents("boolq")[0]
        #expect(b.requests.map { $0.arguments[1] } == [" no", " yes"])
        #expect(b.requests[0].arguments[0].hasPrefix("Passage: All biomass goes through"))
        #expect(b.requests[0].arguments[0].hasSuffix("?\nAnswer:"))
        let o = try documents("openbookqa")[0]
        #expect(o.gold == 1 && o.requests[1] == .loglikelihood(context: "A person wants to start saving money so that they can afford a nice vacation at the end of the year. After looking over their budget and expenses, they decide the best way to save money is to", continuation: " quit eating lunch out"))
        let w = try documents("winogrande")[0]
        #expect(w.gold == 1)
        #expect(w.requests == [.loglikelihood(context: "Sarah was a much better surgeon than Maria so Sarah", continuation: " always got the easier cases."),
                               .loglikelihood(context: "Sarah was a much better surgeon than Maria so Maria", continuation: " always got the easier cases.")])
        let l = try documents("lambada_openai")[0]
        #expect(l.requests[0].arguments[0].hasPrefix("In my palm is a clear stone"))
        #expect(l.requests[0].arguments[1].hasPrefix(" "))
    }

    struct Pin: Decodable { var bytes: Int; var fnv1a64: String }
    struct Page: Decodable { var words: Int; var bytes: Int; var page: Pin; var detok: Pin }
    struct Fixture: Decodable {
        var wikitext_pages: [Page]
        var wikitext2_rows: Int
        var wikitext2_chunked_text: Pin
        var ptb_rows: Int
        var ptb_chunked_text: Pin
    }

    func fixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/evaluation_text.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    @Test func wikitextPagesMatchPython() throws {
        let fx = try fixture()
        let docs = try documents("wikitext")
        #expect(docs.count == fx.wikitext_pages.count)
        for (d, p) in zip(docs, fx.wikitext_pages) {
            let page = d.fields["page"] ?? ""
            #expect(Int(d.weights["words"] ?? 0) == p.words, "page \(d.id) words")
            #expect(Int(d.weights["bytes"] ?? 0) == p.bytes, "page \(d.id) bytes")
            #expect(fnv1a64(page) == p.page.fnv1a64, "page \(d.id) text")
            guard case let .loglikelihoodRolling(text) = d.requests[0] else { Issue.record("not rolling"); continue }
            #expect(text.utf8.count == p.detok.bytes && fnv1a64(text) == p.detok.fnv1a64, "page \(d.id) detokenized")
        }
    }

    @Test func chunkedCorpusTextsMatchPython() throws {
        let fx = try fixture()
        let dir = try data()
        let wt = ChunkedPerplexityTask(.wikitext2).corpusText(try DataFiles.text(dir.appendingPathComponent("wikitext2/wiki.test.raw")))
        #expect(wt.utf8.count == fx.wikitext2_chunked_text.bytes && fnv1a64(wt) == fx.wikitext2_chunked_text.fnv1a64)
        let ptb = ChunkedPerplexityTask(.ptb).corpusText(try DataFiles.text(dir.appendingPathComponent("ptb/ptb.test.txt")))
        #expect(ptb.utf8.count == fx.ptb_chunked_text.bytes && fnv1a64(ptb) == fx.ptb_chunked_text.fnv1a64)
        #expect(try DataFiles.lines(dir.appendingPathComponent("wikitext2/wiki.test.raw")).count == fx.wikitext2_rows)
        #expect(try DataFiles.lines(dir.appendingPathComponent("ptb/ptb.test.txt")).count == fx.ptb_rows)
    }

    @Test func stsbPairsSplitOnTabsOnly() throws {
        let pairs = try STSBenchmark.pairs(dataDirectory: try data())
        #expect(pairs.count == 1379)
        #expect(pairs[0] == STSPair(score: 2.5, sentence1: "A girl is styling her hair.", sentence2: "A girl is brushing her hair."))
        // Lines with a double quote stay separate pairs, quotes kept as text.
        #expect(pairs.filter { $0.sentence1.contains("\"") || $0.sentence2.contains("\"") }.count > 0)
        #expect(pairs.allSatisfy { (0 ... 5).contains($0.score) })
    }
}
