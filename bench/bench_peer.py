#!/usr/bin/env python3
"""mixlab against Python eager: `host run` and the HF transformers peer (bench/python/hf_peer.py)
train the same model, from the same initial weights, with the same optimizer, schedule,
clipping, batch, sequence length, threads and precision. Rounds alternate the two sides (and
which goes first); the table reports each side's median tokens/s, the median of the per-round
ratios mixlab/peer, and each side's MFU against the matmul rate of the run's dtype measured in
each round (build/bench/bench_matmul). See bench/README.md.

    bench/bench_peer.py [--models llama,moe,mamba2] [--d-models 192,512,1024]
        [--dtypes float32,bfloat16] [--rounds 3] [--steps N] [--warmup 2] [--layers L]
        [--batch 16] [--seq-len 128] [--threads 2] [--profile llama:512:bfloat16]
        [--build build] [--markdown FILE] [--keep DIR]

Per model and d_model: `host compile` makes the model (bench/peer/<model>.toml with the size's
--set), `host export --format hf` writes it for transformers, and both sides start from those
weights (`host run --init-from`, `from_pretrained`); their parameter counts are printed and a
difference stops the bench. Speed is the median step time over the steps after --warmup
(mixlab: metrics.jsonl, one line per step; peer: perf_counter around each step).
--profile MODEL:D:DTYPE adds one run of each side under its profiler and prints the top ops.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = {"llama": "llama.toml", "moe": "moe.toml", "mamba2": "mamba2.toml"}
# Per d_model: layers and steps (warm-up included) that keep a round practical on 2 cores.
SIZES = {192: (4, 10), 512: (4, 7), 1024: (2, 5)}


def size_sets(model, d, layers):
    sets = [f"model.d_model={d}", f"model.schedule.0.repeat={layers}"]
    if model != "mamba2":
        sets.append(f"model.templates.block.mixer.n_heads={max(1, d // 64)}")
    if model == "llama":
        sets.append(f"model.templates.block.ffn.hidden={3 * d}")
    if model == "moe":
        sets.append(f"model.templates.block.ffn.expert_hidden={3 * d // 2}")
    return sets


def run(cmd, what):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_peer: {what} failed (exit {r.returncode}): {' '.join(map(str, cmd))}\n{r.stdout}{r.stderr}")
    return r.stdout


def host_args(a, model, d, layers, work):
    args = [str(HERE / "peer" / MODELS[model])]
    for s in size_sets(model, d, layers) + [f"data.cache_dir={work / 'cache'}", f"training.batch_size={a.batch}",
                                            f"data.seq_len={a.seq_len}", f"model.max_seq_len={a.seq_len}",
                                            f"training.threads={a.threads}"]:
        args += ["--set", s]
    return args


def step_times(metrics_file):
    """Durations of the steps of a run from its metrics.jsonl (one line per step)."""
    lines = [json.loads(l) for l in open(metrics_file) if '"train/loss"' in l]
    t = [0.0] + [l["time_s"] for l in lines]
    return [b - a for a, b in zip(t, t[1:])]


def mixlab_run(a, host, cfg, dtype, steps, out, profile_steps=0):
    cmd = [host, "run"] + cfg["args"] + ["--set", f"training.steps={steps}", "--set", f"training.dtype={dtype}",
                                         "--init-from", str(cfg["compiled"]), "--output-dir", str(out)]
    if profile_steps:
        cmd += ["--profile-steps", str(profile_steps)]
    run(cmd, "host run")
    manifest = json.load(open(out / "manifest.json"))
    median = statistics.median(step_times(out / "metrics.jsonl")[a.warmup:])
    return {"tok_per_s": a.batch * a.seq_len / median, "params": manifest["model"]["params_total"],
            "flops_per_token": manifest["model"]["train_flops_per_token"]}


def peer_run(a, cfg, dtype, steps, profile_out=None):
    cmd = [sys.executable, str(HERE / "python" / "hf_peer.py"), str(cfg["hf"]), "--config", str(cfg["config"]),
           "--dtype", dtype, "--steps", str(steps), "--warmup", str(a.warmup), "--json"]
    shard = next((cfg["work"] / "cache").glob("grammar-*/train.bin"), None)
    if shard:
        cmd += ["--tokens", str(shard)]
    if profile_out:
        cmd += ["--profile-steps", "1", "--profile-out", str(profile_out)]
    return json.loads(run(cmd, "hf_peer.py").strip().splitlines()[-1])


def matmul_peak(a, dtype):
    out = run([str(Path(a.build) / "bench" / "bench_matmul"), "--dtype", dtype, "--threads", str(a.threads),
               "--repeats", "3", "--json"], "bench_matmul")
    return json.loads(out)["gflops"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="llama,moe,mamba2")
    p.add_argument("--d-models", default="192,512,1024")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=0, help="steps per run, warm-up included (default: per d_model)")
    p.add_argument("--warmup", type=int, default=2, help="first steps of each run not timed")
    p.add_argument("--layers", type=int, default=0, help="layers (default: per d_model)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--profile", default="llama:512:bfloat16", help="MODEL:D_MODEL:DTYPE to profile, or none")
    p.add_argument("--profile-top", type=int, default=15)
    p.add_argument("--build", default="build")
    p.add_argument("--markdown", default="", help="also write the table to this file")
    p.add_argument("--keep", default="", help="work in this folder and keep it (default: a temporary one)")
    a = p.parse_args()
    models = a.models.split(",")
    d_models = [int(d) for d in a.d_models.split(",")]
    dtypes = a.dtypes.split(",")
    for m in models:
        if m not in MODELS:
            sys.exit(f"bench_peer: --models: unknown model {m!r} (llama, moe, mamba2)")
    for t in dtypes:
        if t not in ("float32", "bfloat16"):
            sys.exit(f"bench_peer: --dtypes: unknown dtype {t!r} (float32, bfloat16)")
    if a.steps and a.steps <= a.warmup:
        sys.exit(f"bench_peer: --steps {a.steps} must exceed --warmup {a.warmup}")
    if a.profile != "none" and len(a.profile.split(":")) != 3:
        sys.exit(f"bench_peer: --profile {a.profile!r}: expected MODEL:D_MODEL:DTYPE (e.g. llama:512:bfloat16) or none")
    host = str(Path(a.build) / "host")
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-peer-"))
    root.mkdir(parents=True, exist_ok=True)

    # The models, once: compiled by mixlab, exported for transformers.
    configs = {}
    for m in models:
        for d in d_models:
            layers, steps = SIZES.get(d, (4, 7))
            layers, steps = a.layers or layers, a.steps or steps
            work = root / f"{m}-{d}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            args = host_args(a, m, d, layers, root)
            run([host, "compile"] + args + ["--output-dir", str(work / "compiled")], "host compile")
            run([host, "export", str(work / "compiled"), "--format", "hf", "--output-dir", str(work / "hf")],
                "host export")
            configs[(m, d)] = {"args": args, "compiled": work / "compiled", "hf": work / "hf", "layers": layers,
                               "steps": steps, "config": work / "compiled" / "config.json", "work": root}
    print(f"bench_peer: {len(configs)} model(s) x {len(dtypes)} dtype(s), {a.rounds} rounds, work folder {root}",
          file=sys.stderr)

    results = {}  # (m, d, dtype) -> lists per round
    peaks = {t: [] for t in dtypes}
    for r in range(a.rounds):
        for t in dtypes:
            peaks[t].append(matmul_peak(a, t))
        for (m, d), cfg in configs.items():
            for t in dtypes:
                res = results.setdefault((m, d, t), {"mixlab": [], "peer": [], "ratio": []})
                sides = ["mixlab", "peer"] if r % 2 == 0 else ["peer", "mixlab"]
                got = {}
                for side in sides:
                    if side == "mixlab":
                        got[side] = mixlab_run(a, host, cfg, t, cfg["steps"], root / "runs" / f"{m}-{d}-{t}-{r}")
                    else:
                        got[side] = peer_run(a, cfg, t, cfg["steps"])
                if got["mixlab"]["params"] != got["peer"]["params_total"]:
                    sys.exit(f"bench_peer: {m} d_model {d}: mixlab has {got['mixlab']['params']} parameters, "
                             f"the HF model {got['peer']['params_total']}: not the same architecture")
                res["mixlab"].append(got["mixlab"]["tok_per_s"])
                res["peer"].append(got["peer"]["tok_per_s"])
                res["ratio"].append(got["mixlab"]["tok_per_s"] / got["peer"]["tok_per_s"])
                res["params"], res["flops"] = got["mixlab"]["params"], got["mixlab"]["flops_per_token"]
                res["hf_class"] = got["peer"]["model"]
                print(f"round {r + 1}/{a.rounds} {m} d{d} {t}: mixlab {got['mixlab']['tok_per_s']:.0f} tok/s, "
                      f"peer {got['peer']['tok_per_s']:.0f} tok/s", file=sys.stderr)
        shutil.rmtree(root / "runs", ignore_errors=True)

    peak = {t: statistics.median(v) for t, v in peaks.items()}
    lines = [f"mixlab `host run` vs Python eager (HF transformers), {a.threads} thread(s), batch {a.batch} x T "
             f"{a.seq_len}, medians of {a.rounds} interleaved rounds; matmul peak (1024^3, same threads): " +
             ", ".join(f"{t} {peak[t]:.0f} GFLOP/s" for t in dtypes),
             "",
             "| model | HF class | d_model | layers | params | dtype | mixlab tok/s | peer tok/s | mixlab/peer | "
             "mixlab MFU | peer MFU |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (m, d, t), res in results.items():
        mx, pe = statistics.median(res["mixlab"]), statistics.median(res["peer"])
        mfu = lambda tok: 100 * tok * res["flops"] / (peak[t] * 1e9)
        lines.append(f"| {m} | {res['hf_class']} | {d} | {configs[(m, d)]['layers']} | {res['params'] / 1e6:.2f}M | {t} "
                     f"| {mx:.0f} | {pe:.0f} | **{statistics.median(res['ratio']):.2f}** | {mfu(mx):.1f}% | "
                     f"{mfu(pe):.1f}% |")
    table = "\n".join(lines)
    print(table)
    if a.markdown:
        Path(a.markdown).write_text(table + "\n")

    m, d, t = a.profile.split(":") if a.profile != "none" else (None, 0, None)
    cfg = configs.get((m, int(d))) if t in dtypes else None
    if a.profile != "none" and cfg is None:
        print(f"\nno profile: --profile {a.profile} is not among the models, sizes and dtypes measured", file=sys.stderr)
    if cfg is not None:
        out = root / "profile-mixlab"
        shutil.rmtree(out, ignore_errors=True)
        mixlab_run(a, host, cfg, t, a.warmup + 1, out, profile_steps=1)
        text = (out / "profile.txt").read_text().splitlines()
        print(f"\nmixlab profile, {m} d_model {d} {t} (one step after the first; {out}/profile.txt, profile.json):")
        print("\n".join(text[:2 + a.profile_top]))
        peer_table = root / "profile-peer.txt"
        peer_run(a, cfg, t, a.warmup + 1, profile_out=peer_table)
        rows = peer_table.read_text().splitlines()
        print(f"\nPython eager profile, same model and dtype (torch.profiler, one step after {a.warmup + 1}; {peer_table}):")
        print("\n".join(rows[:3 + a.profile_top] + rows[-2:]))
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
