#!/usr/bin/env python3
"""Do two runs of the same sweep draw the same conclusions?

    python3 scripts/compare-reports.py RUN_A/report.json RUN_B/report.json

For every figure that either report marks resolved (`<key>_resolved` = 1: a change against the
baseline whose interval excludes no change), the direction of that change in the other report
must be the same. Prints one line per resolved figure and exits 1 when a direction differs; a
figure resolved in one run and not in the other is listed but is no contradiction.

Directions: `<key>_change` (a difference, or a ratio for perplexities: compared with 1);
percentages of the baseline (`*_pct`: compared with 100); J/token against the baseline row's.
"""
import json
import sys


def direction(row, base, key):
    change = row.get(key + "_change")
    if change is not None:
        return (change > 1) - (change < 1) if "perplexity" in key else (change > 0) - (change < 0)
    value = row.get(key)
    if value is None:
        return None
    if key.endswith("_pct"):
        return (value > 100) - (value < 100)
    reference = base.get(key) if base else None
    if reference is None:
        return None
    return (value > reference) - (value < reference)


def figures(path):
    with open(path) as f:
        report = json.load(f)
    out = {}
    for model in report["models"]:
        rows = model["rows"]
        base = next((r for r in rows if r.get("variant") == "baseline"), rows[0] if rows else None)
        for row in rows:
            for field, flag in row.items():
                if not field.endswith("_resolved"):
                    continue
                key = field[: -len("_resolved")]
                out[(model["model"], row["variant"], key)] = (flag == 1, direction(row, base, key))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: compare-reports.py A/report.json B/report.json")
    try:
        a, b = figures(sys.argv[1]), figures(sys.argv[2])
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"compare-reports: {e}")
    sign = {1: "+", -1: "-", 0: "0", None: "?"}
    contradictions = resolved_both = 0
    for k in sorted(set(a) | set(b)):
        ra, da = a.get(k, (False, None))
        rb, db = b.get(k, (False, None))
        if not (ra or rb):
            continue
        if ra and rb:
            resolved_both += 1
        agree = da == db
        contradictions += not agree
        mark = "agree" if agree else "CONTRADICTS"
        print(f"{k[0]:10} {k[1]:16} {k[2]:34} A {sign[da]}{' resolved' if ra else '         '}"
              f"  B {sign[db]}{' resolved' if rb else '         '}  {mark}")
    print(f"{resolved_both} figures resolved in both runs; {contradictions} with a direction that differs")
    sys.exit(1 if contradictions else 0)


if __name__ == "__main__":
    main()
