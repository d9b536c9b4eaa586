#!/usr/bin/env python3
"""Reference fixtures for `greenprune recover` from PyTorch + Hugging Face PEFT (issue 20).

Not part of CI: it installs torch (CPU), transformers, peft and safetensors from PyPI into a
virtual environment under ~/.cache/greenprune/peft-venv on first use and re-runs itself there.

Subcommands
  gradients MODEL OUT [--tokens 1,2,3,...] [--rows 2] [--seq-len 16] [--rank 8] [--alpha 16]
            [--lr 1e-4] [--seed 0] [--targets q_proj,k_proj,...]
      One training step of LoRA on MODEL (a Hugging Face Llama directory) on a fixed batch, with
      A fixed (drawn from --seed, saved) and B = 0, dropout 0 so the step is deterministic.
      Writes OUT/:
        adapter_init/            the adapter before the step, in PEFT's saved layout (the Swift
                                 side loads this A instead of drawing its own)
        batch.json               the token rows and the loss mask (HF causal-LM loss, mean over
                                 counted targets)
        grads.safetensors        d loss / d lora_A and lora_B per module, PEFT's tensor names
        adapter_after_step/      the adapter after one torch.optim.AdamW step (lr, no warm-up)
        loss.json                the loss before the step
      The Swift engine's gradients of the same batch must equal grads.safetensors within 1e-4
      relative per tensor.

  check OUT [--tokens ...] [--rows 2] [--seq-len 16]
      OUT is a directory written by `greenprune recover`: loads its base model (adapter_config's
      base_model_name_or_path) with the adapter in OUT/adapter via PeftModel.from_pretrained, and OUT
      as a plain (merged) model, runs both on a fixed batch and prints the largest logit
      difference; exits non-zero past --tolerance (default 1e-4 relative to the logits' scale).
      With --expected FILE.json ({"tokens": rows, "last_logits": GreenPrune's logits at each row's
      last position, from the model with the adapters unmerged}) the PEFT logits are compared with
      those too. Also writes OUT/../peft-check-logits.safetensors.

  bench MODEL [--data FILE.jsonl] [--seq-len 256] [--batch-size 8] [--micro-batch 2] [--rank 8]
        [--alpha 16] [--dropout 0.05] [--lr 1e-4] [--seconds 60] [--threads 2] [--checkpointing]
      Training speed of PyTorch + PEFT on the configuration `greenprune recover` runs: LoRA on
      the --targets, AdamW, batches of --batch-size records in --micro-batch passes, each record
      of the JSONL's `text` tokenized with the model's tokenizer (special tokens), cut to
      --seq-len and ended with EOS when shorter, right-padded in a micro-batch with the padding
      out of the loss. One unmeasured step, then steps for --seconds; prints one JSON line:
      {"tokens_per_second", "tokens", "steps", "seconds", "threads", "checkpointing"} where
      tokens are counted targets, as recovery.json counts them.

Environment: GREENPRUNE_PEFT_VENV overrides the venv folder; PIP_INDEX_URL / PIP_EXTRA_INDEX_URL
are passed to pip as usual (PyPI's Linux torch wheel brings its CUDA libraries, several GB; a
CPU-only index, where one is reachable, is much smaller).
"""

import argparse
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

VENV = Path(os.environ.get("GREENPRUNE_PEFT_VENV", Path.home() / ".cache/greenprune/peft-venv"))
PACKAGES = ["torch", "transformers", "peft", "safetensors", "numpy"]
TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def ensure_venv():
    """Re-executes this script inside the venv, creating it and installing the packages once."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {VENV} and installing {' '.join(PACKAGES)} from PyPI", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
        subprocess.check_call([str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        subprocess.check_call([str(py), "-m", "pip", "install", "--quiet"] + PACKAGES)
    os.execv(str(py), [str(py), __file__] + sys.argv[1:])


def fixed_batch(args, vocab):
    """Token rows: --tokens cut into --rows rows, or a seeded draw below the vocabulary."""
    import torch
    if args.tokens:
        ids = [int(t) for t in args.tokens.split(",")]
        per = len(ids) // args.rows
        rows = [ids[r * per:(r + 1) * per] for r in range(args.rows)]
    else:
        g = torch.Generator().manual_seed(1234)
        rows = torch.randint(0, vocab, (args.rows, args.seq_len), generator=g).tolist()
    return rows


def peft_model(model_dir, args):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    cfg = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0, bias="none",
                     target_modules=args.targets.split(","), task_type="CAUSAL_LM")
    torch.manual_seed(args.seed)
    return get_peft_model(base, cfg)


def causal_loss(logits, rows, mask):
    """Hugging Face's causal-LM loss: logits at t - 1 predict token t, mean over counted targets."""
    import torch
    ids = torch.tensor(rows)
    labels = ids.clone()
    labels[~torch.tensor(mask)] = -100
    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100)


def fnv1a64(data):
    """FNV-1a 64-bit of the bytes, as hex: which base model a fixture was made from."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def lora_state(model):
    """The adapter's tensors under PEFT's saved names (no adapter name inside)."""
    from peft import get_peft_model_state_dict
    return {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}


def gradients(args):
    import torch
    from safetensors.torch import save_file
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = peft_model(args.model, args)
    model.train()
    rows = fixed_batch(args, model.config.vocab_size)
    mask = [[t > 0 for t in range(len(r))] for r in rows]
    model.save_pretrained(out / "adapter_init")
    (out / "batch.json").write_text(json.dumps({"tokens": rows, "mask": mask}))
    logits = model(input_ids=torch.tensor(rows)).logits
    loss = causal_loss(logits, rows, mask)
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        if p.requires_grad and p.grad is not None:
            key = name.replace(".default", "")
            grads[key] = p.grad.detach().contiguous()
    save_file(grads, str(out / "grads.safetensors"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    opt.step()
    model.save_pretrained(out / "adapter_after_step")
    weights = Path(args.model) / "model.safetensors"
    (out / "loss.json").write_text(json.dumps({
        "loss": loss.item(), "targets": sum(sum(m[1:]) for m in mask), "lr": args.lr,
        "rank": args.rank, "alpha": args.alpha,
        "model_safetensors_fnv1a64": fnv1a64(weights.read_bytes()) if weights.exists() else None,
    }, indent=1))
    for folder in ("adapter_init", "adapter_after_step"):
        (out / folder / "README.md").unlink(missing_ok=True)
    print(f"{out}: loss {loss.item():.6f}, {len(grads)} gradient tensors")


def check(args):
    import torch
    from peft import PeftModel
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    out = Path(args.out)
    adapter = out / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(cfg["base_model_name_or_path"], dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(adapter)).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    expected = json.loads(Path(args.expected).read_text()) if args.expected else None
    rows = expected["tokens"] if expected else fixed_batch(args, merged.config.vocab_size)
    with torch.no_grad():
        a = adapted(input_ids=torch.tensor(rows)).logits
        m = merged(input_ids=torch.tensor(rows)).logits
    diff = (a - m).abs().max().item()
    scale = m.abs().max().item()
    save_file({"peft_logits": a.contiguous(), "merged_logits": m.contiguous(),
               "tokens": torch.tensor(rows)}, str(out.parent / "peft-check-logits.safetensors"))
    print(f"{out}: PEFT (base + adapter) vs merged directory: max |Δlogit| {diff:.3g} (logits up to {scale:.3g})")
    if diff > args.tolerance * max(1.0, scale):
        sys.exit(f"{out}: the merged directory and the PEFT adapter disagree")
    if expected:
        g = torch.tensor(expected["last_logits"], dtype=torch.float32)
        d = (a[:, -1, :] - g).abs().max().item()
        print(f"{out}: PEFT (base + adapter) vs GreenPrune's adapted model, last positions: max |Δlogit| {d:.3g}")
        if d > args.tolerance * max(1.0, scale):
            sys.exit(f"{out}: GreenPrune's adapted model and PEFT disagree")


def bench(args):
    import time
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    if args.checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    cfg = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.dropout, bias="none",
                     target_modules=args.targets.split(","), task_type="CAUSAL_LM")
    torch.manual_seed(args.seed)
    model = get_peft_model(base, cfg)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    rows = []
    with open(args.data) as f:
        for line in f:
            if line.strip():
                ids = tok(json.loads(line)["text"])["input_ids"][:args.seq_len]
                if len(ids) < args.seq_len and ids[-1] != tok.eos_token_id:
                    ids.append(tok.eos_token_id)
                rows.append(ids)
    pad = tok.eos_token_id

    def step(k):
        batch = [rows[(k * args.batch_size + i) % len(rows)] for i in range(args.batch_size)]
        counted = sum(len(r) - 1 for r in batch)
        for m in range(0, len(batch), args.micro_batch):
            micro = batch[m:m + args.micro_batch]
            t = max(len(r) for r in micro)
            ids = torch.tensor([r + [pad] * (t - len(r)) for r in micro])
            mask = [[i < len(r) for i in range(t)] for r in micro]
            loss = causal_loss(model(input_ids=ids).logits, ids.tolist(), mask)
            # The batch's mean token loss, as greenprune recover scales its micro-batches.
            n = sum(sum(mm[1:]) for mm in mask)
            (loss * n / counted).backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad()
        return counted

    step(0)
    tokens, steps, start = 0, 0, time.time()
    while time.time() - start < args.seconds:
        tokens += step(steps + 1)
        steps += 1
    secs = time.time() - start
    print(json.dumps({"tokens_per_second": tokens / secs, "tokens": tokens, "steps": steps, "seconds": secs,
                      "threads": args.threads, "checkpointing": args.checkpointing}))


def main():
    ensure_venv()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("gradients", "check", "bench"):
        s = sub.add_parser(name)
        if name in ("gradients", "bench"):
            s.add_argument("model")
        if name == "bench":
            s.add_argument("--data", default=str(Path(os.environ.get("GREENPRUNE_DATA", "/work/shared/data"))
                                                 / "c4_sample/c4_validation_2k.jsonl"))
            s.add_argument("--batch-size", type=int, default=8)
            s.add_argument("--micro-batch", type=int, default=2)
            s.add_argument("--dropout", type=float, default=0.05)
            s.add_argument("--seconds", type=float, default=60)
            s.add_argument("--threads", type=int, default=2)
            s.add_argument("--checkpointing", action="store_true")
        else:
            s.add_argument("out")
        s.add_argument("--tokens", default=None)
        s.add_argument("--rows", type=int, default=2)
        s.add_argument("--seq-len", type=int, default=16)
        s.add_argument("--rank", type=int, default=8)
        s.add_argument("--alpha", type=float, default=16)
        s.add_argument("--lr", type=float, default=1e-4)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--targets", default=TARGETS)
        s.add_argument("--tolerance", type=float, default=1e-4)
        s.add_argument("--expected", default=None,
                       help="check: JSON {tokens: rows, last_logits: GreenPrune's logits at each row's last position}")
        if name == "bench":
            s.set_defaults(seq_len=256)
    args = p.parse_args()
    {"gradients": gradients, "check": check, "bench": bench}[args.command](args)


if __name__ == "__main__":
    main()
