#!/usr/bin/env python3
"""Writes Tests/GreenPruneTests/Fixtures/evaluation_text.json: what the wikitext and chunked
tasks must read from ../shared/data, computed with Python's own `re`/`str` semantics and
lm-eval's wikitext_detokenizer (transcribed from lm_eval/tasks/wikitext/preprocess_wikitext.py),
following ../shared/TASKS.md. Texts are pinned by length and FNV-1a 64 of their UTF-8 bytes.

usage: python3 scripts/eval-fixtures.py [DATA_DIR]
"""
import json, os, re, sys

data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../shared/data")

def fnv1a64(b: bytes) -> str:
    h = 0xcbf29ce484222325
    for x in b:
        h ^= x
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"

def detok(string):  # lm-eval wikitext_detokenizer
    string = string.replace("s '", "s'")
    string = re.sub(r"/' [0-9]/", r"/'[0-9]/", string)
    string = string.replace(" @-@ ", "-")
    string = string.replace(" @,@ ", ",")
    string = string.replace(" @.@ ", ".")
    string = string.replace(" : ", ": ")
    string = string.replace(" ; ", "; ")
    string = string.replace(" . ", ". ")
    string = string.replace(" ! ", "! ")
    string = string.replace(" ? ", "? ")
    string = string.replace(" , ", ", ")
    string = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", string)
    string = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", string)
    string = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", string)
    string = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', string)
    string = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", string)
    string = string.replace("= = = =", "====")
    string = string.replace("= = =", "===")
    string = string.replace("= =", "==")
    string = string.replace(" " + chr(176) + " ", chr(176))
    string = string.replace(" \n", "\n")
    string = string.replace("\n ", "\n")
    string = string.replace(" N ", " 1 ")
    string = string.replace(" 's", "'s")
    return string

raw = open(os.path.join(data, "wikitext2/wiki.test.raw"), encoding="utf-8").read()
lines = raw.split("\n")
if raw.endswith("\n"):
    lines = lines[:-1]
heading = re.compile(r"^ = [^=].* = $")
pages, cur = [], None
for line in lines:
    if heading.match(line):
        if cur is not None:
            pages.append(cur)
        cur = ""
    if cur is not None:
        cur += line + "\n"
pages.append(cur)

def pin(s):
    b = s.encode("utf-8")
    return {"bytes": len(b), "fnv1a64": fnv1a64(b)}

out = {"wikitext_pages": [
    {"words": len(re.split(r"\s+", p)), "bytes": len(p.encode("utf-8")), "page": pin(p), "detok": pin(detok(p))}
    for p in pages]}
rows = ["" if l == " " else l + "\n" for l in lines]
out["wikitext2_rows"] = len(rows)
out["wikitext2_chunked_text"] = pin("\n\n".join(rows))
ptb_lines = open(os.path.join(data, "ptb/ptb.test.txt"), encoding="utf-8").read().split("\n")
if ptb_lines[-1] == "":
    ptb_lines = ptb_lines[:-1]
out["ptb_rows"] = len(ptb_lines)
out["ptb_chunked_text"] = pin("\n\n".join(l.strip() for l in ptb_lines))
path = os.path.join(os.path.dirname(__file__), "../Tests/GreenPruneTests/Fixtures/evaluation_text.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(f"{len(pages)} pages, {out['wikitext2_rows']} wikitext rows, {out['ptb_rows']} ptb rows -> {path}")
