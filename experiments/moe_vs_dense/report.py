#!/usr/bin/env python3
"""Lab 00 report: manifest.json (the lab's format) and findings.md, written from
the numbers `host compare` (comparison.json) and `host analyze` (routing.json)
measured in OUT. Every statement below is chosen by those numbers; nothing is
fixed in advance. Usage: report.py OUT_DIR"""
import json
import math
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def ms(summary, key, digits=3):
    s = summary[key]
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def main(out):
    comparison = load(os.path.join(out, "comparison.json"))
    routing = load(os.path.join(out, "routing.json"))
    dense, moe = comparison["experiments"]
    ds, mo = dense["summary"], moe["summary"]
    vs = moe["vs_baseline"]
    moe_run = load(os.path.join(moe["runs"][0]["run_dir"], "manifest.json"))
    cfg = moe_run["config"]
    override = next(o for o in cfg["model"]["overrides"] if o["ffn"]["plugin"] == "moe")
    layer_index, moe_cfg = override["layer"], override["ffn"]
    experts, top_k, alpha = moe_cfg["experts"], moe_cfg["top_k"], moe_cfg["balance_loss_coef"]
    steps = cfg["training"]["steps"]
    seeds = comparison["seeds"]
    n = len(seeds)

    # 1. perplexity
    ppl = vs["final_val_ppl"]
    better = ppl["difference"] < 0
    if ppl["within_spread"]:
        q1 = (f"No measurable difference. Validation perplexity: MoE {ms(mo, 'final_val_ppl')} vs dense "
              f"{ms(ds, 'final_val_ppl')} (mean ± std over {n} seeds); the difference {ppl['difference']:+.3f} "
              f"({100 * ppl['relative']:+.2f}%) is within the spread across seeds (2 SE = {ppl['two_standard_errors']:.3f}).")
    else:
        q1 = (f"{'Yes' if better else 'No, it is worse'}: MoE {ms(mo, 'final_val_ppl')} vs dense {ms(ds, 'final_val_ppl')} "
              f"(mean ± std over {n} seeds); the difference {ppl['difference']:+.3f} ({100 * ppl['relative']:+.2f}%) "
              f"exceeds two standard errors ({ppl['two_standard_errors']:.3f}).")
    loss = vs["final_train_loss"]
    q1 += (f" Final train loss: MoE {ms(mo, 'final_train_loss')} vs dense {ms(ds, 'final_train_loss')}, "
           f"{'within' if loss['within_spread'] else 'beyond'} the spread across seeds.")

    # 2. parameters
    d = cfg["model"]["d_model"]
    ffn_params = 2 * d * moe_cfg.get("expert_hidden", 4 * d)
    extra = moe["params_total"] - dense["params_total"]
    q2 = (f"{int(moe['params_total']):,} vs {int(dense['params_total']):,} parameters: {int(extra):,} more "
          f"(+{100 * extra / dense['params_total']:.1f}%), that is {extra / ffn_params:.2f}x one dense FFN "
          f"({ffn_params:,}): {experts - 1} extra experts plus a {experts}x{d} router. Active per token: "
          f"{int(moe['params_active']):,} ({top_k} of {experts} experts run).")

    # 3. load balance
    layer = routing["layers"][0]
    shares = ", ".join(f"{100 * s:.1f}%" for s in layer["token_share"])
    dead = int(mo["dead_experts"]["mean"]) if "dead_experts" in mo else len(layer["dead_experts"])
    fair = 100.0 / experts
    worst = max(abs(100 * s - fair) for s in layer["token_share"])
    balanced = worst < 0.5 * fair
    q3 = (f"{'Yes' if balanced else 'Only partly'}. On {routing['tokens']:,} validation tokens the {experts} experts "
          f"of layer {layer_index} receive {shares} of the top-{top_k} assignments (fair share {fair:.1f}%; "
          f"largest deviation {worst:.1f} points). Load std at the end of training: {ms(mo, 'load_std', 4)} "
          f"across seeds; dead experts (under 1% of the fair share): {dead}.")

    # 4. specialisation
    bc = routing.get("by_class")
    if bc:
        frac = bc["class_expert_information_fraction"]
        bits = bc["class_expert_information_bits"]
        kind = ("strong" if frac > 0.2 else "partial" if frac > 0.05 else "weak")
        # share x top_k: the fraction of a class's tokens that select the expert.
        tokens = sum(c["tokens"] for c in bc["classes"])
        overall = [sum(c["share"][e] * c["tokens"] for c in bc["classes"]) * top_k / tokens for e in range(experts)]
        prefs = []
        for e in range(experts):
            best = max((c for c in bc["classes"] if c["tokens"] >= 50),
                       key=lambda c: c["share"][e] * top_k - overall[e], default=None)
            if best is not None:
                prefs.append(f"expert {e} takes {100 * best['share'][e] * top_k:.0f}% of {best['class']} tokens "
                             f"(vs {100 * overall[e]:.0f}% of all tokens)")
        token_bits = layer["token_expert_information_bits"]
        q4 = (f"Knowing a token's word class tells {bits:.3f} bits about the experts it is sent to, "
              f"{100 * frac:.1f}% of the routing entropy: {kind} specialisation by class. Most over-represented "
              f"class per expert: " + "; ".join(prefs) + ". But the token itself tells "
              f"{token_bits:.3f} bits ({100 * layer['token_expert_information_fraction']:.1f}%; both Miller-Madow "
              f"corrected, over {routing['tokens']:,} tokens), so the word class explains "
              f"{100 * bits / token_bits:.0f}% of what the token identity explains: "
              + ("routing follows the linguistic category more than the individual word."
                 if bits / token_bits > 0.5 else
                 "the router mostly keys on individual tokens (their identity and frequency), and the classes it "
                 "seems to prefer are largely a side effect of which words belong to them.")
              + " See expert-by-class.png.")
    else:
        q4 = "The corpus carried no token classes; specialisation by class was not measured."

    # 5. time
    wall = vs["train_seconds"]
    q5 = (f"Training time per run: MoE {ms(mo, 'train_seconds', 1)} s vs dense {ms(ds, 'train_seconds', 1)} s "
          f"({100 * wall['relative']:+.1f}%, {'within' if wall['within_spread'] else 'beyond'} the spread across "
          f"seeds); throughput {ms(mo, 'tok_per_s', 0)} vs {ms(ds, 'tok_per_s', 0)} tokens/s. "
          + ("The difference is inside the run-to-run spread, so with these seeds the timings cannot separate the "
             "two. " if wall["within_spread"] else
             f"MoE training was {'slower' if wall['difference'] > 0 else 'faster'} beyond the spread. ")
          + f"By construction the MoE layer runs a router, gathers each expert's tokens and scatters the results "
          f"back, and computes {top_k} expert FFNs per token where the dense block computes one: that block costs "
          f"about {top_k}x the FFN FLOPs plus the dispatch (the whole model: {int(moe['params_active']):,} vs "
          f"{int(dense['params_active']):,} active parameters per token).")

    # 6. verdict
    if not ppl["within_spread"] and better and -ppl["relative"] > 0.10:
        verdict = "adopt"
    elif not ppl["within_spread"] and better:
        verdict = "defer"
    else:
        verdict = "never"
    bottom = {
        "adopt": "The MoE variant beats the dense baseline by more than 10% with the gain beyond the seed spread; "
                 "check the baseline is not weakened before adopting it.",
        "defer": "The MoE variant is better beyond the seed spread, but by under 10%, at the price of "
                 f"{100 * extra / dense['params_total']:.0f}% more parameters and slower steps: not worth it yet.",
        "never": "The MoE variant does not improve the grammar tutor beyond the variation between seeds, while it "
                 f"adds {100 * extra / dense['params_total']:.0f}% parameters, "
                 f"{100 * (moe['params_active'] / dense['params_active'] - 1):.0f}% active compute per token and "
                 f"a router to tune. At d_model {d} on a small synthetic grammar there is no capacity shortage for "
                 "conditional compute to relieve.",
    }[verdict]

    findings = f"""# Lab 00 findings: MoE on the grammar tutor

Protocol: `experiments/moe_vs_dense/run.sh` — dense baseline (`dense.toml`) vs the same model with the
FFN of block {layer_index} replaced by an MoE of {experts} experts, top-{top_k}, balance loss {alpha}
(`moe.toml`); same data, schedule, batch and {steps} steps; seeds {', '.join(map(str, seeds))}. Numbers are
mean ± sample std over the seeds (`comparison.md`); routing is measured by `host analyze` on the seed-{seeds[0]}
MoE model (`routing.json`, `routing-analysis.png`, `expert-by-class.png`).

1. **Did the MoE variant reach lower perplexity?** {q1}

2. **How many more parameters?** {q2}

3. **Did the load-balancing loss work?** {q3}

4. **Did experts specialise linguistically?** {q4}

5. **Did training take longer, and why?** {q5}

6. **Should the grammar tutor adopt MoE?** **{verdict}.** {bottom}
"""
    write_atomic(os.path.join(out, "findings.md"), findings)

    def arm(e):
        """One arm of the comparison in the lab's fields: mean, std and per-seed values."""
        out = {"params": int(e["params_total"]), "params_active": int(e["params_active"])}
        for key in ("final_val_ppl", "final_train_loss", "wall_time_s", "train_seconds"):
            out[key] = e["summary"][key]["mean"]
            out[key + "_std"] = e["summary"][key]["std"]
        out["final_val_ppl_per_seed"] = [r.get("final_val_ppl") for r in e["runs"]]
        return out

    manifest = {
        "seed": seeds[0],
        "seeds": seeds,
        "lab": "00-moe-on-grammar-tutor",
        "num_experts": experts,
        "top_k": top_k,
        "moe_layer_index": layer_index,
        "alpha_aux_loss": alpha,
        "steps": steps,
        "dense_baseline": arm(dense),
        "moe_variant": {
            **arm(moe),
            "load_balance_stddev": mo["load_std"]["mean"],
            "load_balance_stddev_std": mo["load_std"]["std"],
            "experts_dead_count": dead,
            "validation_expert_share": layer["token_share"],
        },
        "difference_within_seed_spread": ppl["within_spread"],
        "verdict_for_grammar_tutor": verdict,
        "lesson_notes": bottom,
    }
    write_atomic(os.path.join(out, "manifest.json"), json.dumps(manifest, indent=2) + "\n")
    print(findings)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: report.py OUT_DIR (the folder run.sh wrote)")
    main(sys.argv[1])
