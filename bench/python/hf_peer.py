"""The Python-eager peer of `host run`: trains a Hugging Face transformers model
(LlamaForCausalLM with sdpa attention, MixtralForCausalLM, Mamba2ForCausalLM's torch
path) with the optimizer, schedule, clipping, batch, sequence length, threads and
precision of a mixlab experiment, and prints its tokens/s.

    python3 bench/python/hf_peer.py HF_DIR --config CONFIG_JSON [--dtype float32|bfloat16]
        [--steps 8] [--warmup 2] [--tokens TRAIN_BIN] [--profile-steps K --profile-out FILE] [--json]

HF_DIR is `host export` of a `host compile` folder (bench/bench_peer.py makes both), so the
architecture and the initial weights are mixlab's own; CONFIG_JSON is that folder's
resolved experiment (config.json). The loss is mixlab's: float32 cross-entropy over every
position of a T-token window against the next tokens; an MoE adds the router's balance
loss (HF's load_balancing_loss_func, coefficient = moe balance_loss_coef). bfloat16 is
torch.autocast("cpu", bfloat16) around forward and loss, parameters and AdamW in float32,
as mixlab's training.dtype = "bfloat16". Tokens: TRAIN_BIN (a mixlab token shard, the
run's own data) read in consecutive windows, else uniform random ids.

Speed: the median step time over the steps after `warmup`, as tokens/s.
"""
import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import torch
import transformers


def learning_rate(step, cfg):
    """mixlab's host/train/lr_schedule.hpp: linear warm-up, then cosine/linear/constant decay."""
    peak = cfg["optimizer"]["lr"]
    sched = cfg["lr_scheduler"]
    floor, warmup, total = peak * sched["min_lr_factor"], sched["warmup_steps"], cfg["training"]["steps"]
    if step < warmup:
        return peak * (step + 1) / warmup
    if sched["decay_type"] == "constant" or total <= warmup:
        return peak
    progress = min(1.0, max(0.0, (step - warmup) / max(1, total - 1 - warmup)))
    if sched["decay_type"] == "linear":
        return peak + (floor - peak) * progress
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


def token_batches(path, vocab, batch, seq_len, seed):
    """Windows of seq_len + 1 tokens: consecutive ones from a mixlab shard, or random ids."""
    if path:
        header = np.fromfile(path, dtype=np.int32, count=256)
        width = {1: np.uint8, 2: np.uint16, 4: np.uint32}[int(header[5])]
        tokens = np.fromfile(path, dtype=width, offset=1024).astype(np.int64)
        windows = (len(tokens) - 1) // seq_len
        i = 0
        while True:
            rows = [tokens[((i + r) % windows) * seq_len:][:seq_len + 1] for r in range(batch)]
            i += batch
            yield torch.from_numpy(np.stack(rows))
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randint(0, vocab, (batch, seq_len + 1), generator=gen)


def moe_balance_coef(cfg):
    """The moe plugin's balance_loss_coef in the resolved experiment (its default 0.01)."""
    coefs = {t["ffn"].get("balance_loss_coef", 0.01) for t in cfg["model"]["templates"].values()
             if isinstance(t.get("ffn"), dict) and t["ffn"].get("plugin") == "moe"}
    if len(coefs) != 1:
        sys.exit(f"hf_peer.py: expected one moe balance_loss_coef in the experiment, found {sorted(coefs)}")
    return coefs.pop()


def parameter_groups(model, weight_decay):
    """As mixlab's ParamSpecs: decay on matrices and the conv kernel, none on vectors and the embedding."""
    embed = model.get_input_embeddings().weight
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 and p is not embed else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hf_dir")
    p.add_argument("--config", required=True, help="the mixlab folder's config.json (resolved experiment)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="default: the config's training.dtype")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2, help="steps not timed")
    p.add_argument("--tokens", default="", help="a mixlab token shard (train.bin); default random ids")
    p.add_argument("--profile-steps", type=int, default=0, help="profile K steps after the timed ones")
    p.add_argument("--profile-out", default="", help="file for the profile table (ops by self CPU time)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args()
    if a.steps <= a.warmup:
        sys.exit(f"hf_peer.py: --steps {a.steps} must exceed --warmup {a.warmup}")

    cfg = json.load(open(a.config))
    tr = cfg["training"]
    dtype = a.dtype or tr["dtype"]
    torch.set_num_threads(tr["threads"] if tr["threads"] > 0 else torch.get_num_threads())
    torch.manual_seed(cfg["job"]["seed"])
    attention = {} if json.load(open(f"{a.hf_dir}/config.json"))["model_type"] == "mamba2" else \
        {"attn_implementation": "sdpa"}
    model = transformers.AutoModelForCausalLM.from_pretrained(a.hf_dir, dtype=torch.float32, **attention)
    model.train()
    hf = model.config
    is_moe = getattr(hf, "num_local_experts", 0) > 0
    balance_coef = 0.0
    if is_moe:  # the router's balance loss: mixlab's is HF's divided by top_k (plugins/moe/checks.cpp)
        hf.output_router_logits = True
        balance_coef = moe_balance_coef(cfg) / hf.num_experts_per_tok
    n_params = sum(t.numel() for t in {id(t): t for t in model.parameters()}.values())

    opt = cfg["optimizer"]
    optimizer = torch.optim.AdamW(parameter_groups(model, opt["weight_decay"]), lr=opt["lr"],
                                  betas=tuple(opt["betas"]), eps=opt["eps"])
    batch, seq_len = tr["batch_size"], cfg["data"]["seq_len"]
    batches = token_batches(a.tokens, hf.vocab_size, batch, seq_len, cfg["job"]["seed"])
    max_norm = tr["max_norm"] if tr["max_norm"] > 0 else 1e30
    autocast = dtype == "bfloat16"

    def step(i):
        for g in optimizer.param_groups:
            g["lr"] = learning_rate(i, cfg)
        optimizer.zero_grad()
        window = next(batches)
        inputs, targets = window[:, :-1], window[:, 1:]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(input_ids=inputs, use_cache=False)
            logits = out.logits.reshape(-1, out.logits.size(-1)).float()
            loss = torch.nn.functional.cross_entropy(logits, targets.reshape(-1))
            objective = loss + balance_coef * out.aux_loss if is_moe else loss
        objective.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        return loss.item()

    times, losses = [], []
    for i in range(a.steps):
        t0 = time.perf_counter()
        losses.append(step(i))
        times.append(time.perf_counter() - t0)
    median = statistics.median(times[a.warmup:])

    if a.profile_steps > 0:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(a.steps, a.steps + a.profile_steps):
                step(i)
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
        if a.profile_out:
            open(a.profile_out, "w").write(table)
        else:
            print(table)

    impls = {"attention": hf._attn_implementation if attention else None,
             "experts": hf._experts_implementation if is_moe else None}
    result = {"model": type(model).__name__, "params_total": n_params, "dtype": dtype, "implementations": impls,
              "threads": torch.get_num_threads(), "batch": batch, "seq_len": seq_len,
              "median_step_s": median, "tok_per_s": batch * seq_len / median,
              "first_loss": losses[0], "last_loss": losses[-1], "torch": torch.__version__,
              "transformers": transformers.__version__}
    if a.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} ({', '.join(f'{k} {v}' for k, v in impls.items() if v)}): {n_params} parameters, "
              f"{dtype}, {result['threads']} thread(s), "
              f"B {batch} x T {seq_len}: {result['tok_per_s']:.0f} tok/s (median of {a.steps - a.warmup} steps), "
              f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")


if __name__ == "__main__":
    main()
