"""GreenPrune's results.json, samples_*.jsonl and emissions.csv read by lm-eval and CodeCarbon
themselves; run by scripts/check-interop.sh in its venv.

    check_interop.py WORK GREENPRUNE_BIN

WORK holds eval/ (greenprune evaluate --log-samples) and energy/ (greenprune energy). Each check
prints PASS or FAIL on one line; the exit status is 1 when any failed. The expected key sets come
from the installed lm-eval's own schema (lm_eval/result_schema.py, the evaluation tracker's
dataclass, TaskConfig.to_dict), not from a list kept here.
"""
import csv
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

work, greenprune = Path(sys.argv[1]), sys.argv[2]
failed = []


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail and not ok else ""))
    if not ok:
        failed.append(name)


# ---------------------------------------------------------------- lm-eval
import lm_eval
from lm_eval import utils as lu
from lm_eval.config.task import TaskConfig
from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker
from lm_eval.result_schema import EvalResults, SampleResult, _EvalConfig, _TaskMetrics

print(f"lm_eval {lm_eval.__version__}")
results = json.loads((work / "eval" / "results.json").read_text())
table = lu.make_table(results)
print(table)
check("lm_eval.utils.make_table renders results.json", all(t in table for t in results["results"]))

# What save_results_aggregated writes: EvalResults less groups (none here) and samples (written
# apart), plus the tracker's dataclass fields and task_hashes.
expected = set(EvalResults.__annotations__) - {"groups", "samples"}
expected |= {f.name for f in dataclasses.fields(GeneralConfigTracker)} | {"task_hashes"}
got = set(results) - {"greenprune"}
check("results.json top-level keys are lm-eval's (+ greenprune)", got == expected,
      f"missing {sorted(expected - got)}, extra {sorted(got - expected)}")
for task, entry in results["results"].items():
    need = set(_TaskMetrics.__required_keys__)
    check(f"results[{task}] has {sorted(need)}", need <= set(entry), f"missing {sorted(need - set(entry))}")
    check(f"versions[{task}] is a float as lm-eval writes it", isinstance(results["versions"][task], float),
          repr(results["versions"][task]))
    cfg = results["configs"][task]
    always = set(TaskConfig(task=task, output_type=cfg.get("output_type", "loglikelihood"), num_fewshot=0).to_dict())
    check(f"configs[{task}] has TaskConfig.to_dict()'s keys", always <= set(cfg), f"missing {sorted(always - set(cfg))}")
hf_only = {"model_dtype", "model_revision", "model_sha"}
need = set(_EvalConfig.__annotations__) - hf_only
check("config has _EvalConfig's keys (less HF-model-only ones)", need <= set(results["config"]),
      f"missing {sorted(need - set(results['config']))}")

for path in sorted((work / "eval").glob("samples_*.jsonl")):
    task = path.stem[len("samples_"):]
    samples = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    need = set(SampleResult.__required_keys__)
    check(f"{path.name}: every line has SampleResult's keys", all(need <= set(s) for s in samples))
    # The hashes as lm-eval's evaluator and tracker compute them.
    ok_doc = all(s["doc_hash"] == lu.hash_string(json.dumps(s["doc"], indent=2, default=lu.handle_non_serializable,
                                                             ensure_ascii=False)) for s in samples)
    ok_prompt = all(s["prompt_hash"] == lu.hash_string(s["arguments"]["gen_args_0"]["arg_0"]) for s in samples)
    ok_target = all(s["target_hash"] == lu.hash_string(str(s["target"])) for s in samples)
    check(f"{path.name}: doc_hash, prompt_hash, target_hash as lm-eval computes them", ok_doc and ok_prompt and ok_target,
          f"doc {ok_doc} prompt {ok_prompt} target {ok_target}")
    task_hash = lu.hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples))
    check(f"task_hashes[{task}] as the tracker computes it", results["task_hashes"].get(task) == task_hash)
    full = all(float(s["resps"][i][0][0]) == s["loglikelihoods"][i] for s in samples for i in range(len(s["resps"])))
    check(f"{path.name}: resps carry the full-precision log-likelihoods", full)

# ---------------------------------------------------------------- CodeCarbon
import codecarbon
import pandas as pd
from codecarbon import OfflineEmissionsTracker
from codecarbon.output_methods.emissions_data import EmissionsData
from codecarbon.output_methods.file import FileOutput

print(f"\ncodecarbon {codecarbon.__version__}")
gp_dir = work / "energy"
gp_csv = gp_dir / "emissions.csv"
with open(gp_csv, newline="") as f:
    rows = list(csv.reader(f))
columns = [f.name for f in dataclasses.fields(EmissionsData)]
check("emissions.csv header is EmissionsData's columns in order", rows[0] == columns)
gp = dict(zip(rows[0], rows[1]))

# CodeCarbon itself on the same workload (a 3 s sleep), in its offline mode for the same country.
cc_dir = work / "codecarbon"
cc_dir.mkdir()
tracker = OfflineEmissionsTracker(country_iso_code="USA", output_dir=str(cc_dir), measure_power_secs=1,
                                  log_level="error", save_to_file=True)
tracker.start()
time.sleep(3)
tracker.stop()
with open(cc_dir / "emissions.csv", newline="") as f:
    cc = next(csv.DictReader(f))

print(f"\n{'column':<26} {'greenprune energy -- sleep 3':<40} codecarbon {codecarbon.__version__} (sleep 3)")
for c in columns:
    print(f"{c:<26} {gp[c][:40]:<40} {cc[c][:40]}")
print()

gp_intensity = float(gp["emissions"]) / float(gp["energy_consumed"]) * 1000
cc_intensity = float(cc["emissions"]) / float(cc["energy_consumed"]) * 1000
check("carbon intensity for USA equals CodeCarbon's", abs(gp_intensity - cc_intensity) <= 1e-9 * cc_intensity,
      f"{gp_intensity} vs {cc_intensity} g/kWh")
check("emissions_rate is emissions / duration at full precision",
      float(gp["emissions_rate"]) == float(gp["emissions"]) / float(gp["duration"]))
check("codecarbon_version names the CodeCarbon release followed", gp["codecarbon_version"] == codecarbon.__version__,
      gp["codecarbon_version"])

# CodeCarbon appends its row to GreenPrune's file (its header check passes: no backup) ...
FileOutput("emissions.csv", str(gp_dir), on_csv_write="append").out(tracker.final_emissions_data, None)
backups = [p.name for p in gp_dir.iterdir() if "bak" in p.name]
frame = pd.read_csv(gp_csv)
check("CodeCarbon's FileOutput appends to GreenPrune's emissions.csv", not backups and len(frame) == 2
      and list(frame.columns) == columns, f"backups {backups}, rows {len(frame)}")
# ... and GreenPrune appends to CodeCarbon's.
subprocess.run([greenprune, "energy", "--output-dir", str(cc_dir), "--country", "USA", "--", "true"],
               check=True, stderr=subprocess.DEVNULL)
backups = [p.name for p in cc_dir.iterdir() if "bak" in p.name]
frame = pd.read_csv(cc_dir / "emissions.csv")
check("greenprune energy appends to CodeCarbon's emissions.csv", not backups and len(frame) == 2
      and list(frame.columns) == columns, f"backups {backups}, rows {len(frame)}")

# cpu_utilization_percent: CodeCarbon means one psutil.cpu_percent() per second, but each call runs
# in a new threading.Timer thread and psutil >= 7 keeps its baseline per thread, so every reading
# covers ~0 s. Shown here: the same call from fresh threads vs from one thread.
import threading
import psutil


def fresh_thread_readings(n):
    # Threads kept alive to the end, so none reuses an earlier one's id (and baseline).
    out, done, threads = [], threading.Event(), []
    for _ in range(n):
        t = threading.Thread(target=lambda: (out.append(psutil.cpu_percent()), done.wait()))
        t.start()
        threads.append(t)
        time.sleep(0.5)
    done.set()
    for t in threads:
        t.join()
    return out


psutil.cpu_percent()
time.sleep(1)
same = psutil.cpu_percent()
fresh = fresh_thread_readings(3)
print(f"\ncpu_utilization_percent: psutil {psutil.__version__} cpu_percent() over 1 s in one thread {same}; "
      f"from fresh threads (CodeCarbon's Timer) {fresh}; GreenPrune {gp['cpu_utilization_percent']}, "
      f"CodeCarbon {cc['cpu_utilization_percent']} (upstream: per-thread baseline, see README)")

print("\nnot checked here: lm-eval's own evaluation of the same model (needs torch and the Hub);"
      " the key sets above come from lm-eval's code instead")
print(f"\n{len(failed)} check(s) failed" if failed else "\nall checks passed")
sys.exit(1 if failed else 0)
