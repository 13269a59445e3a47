"""Loads exported Hugging Face folders with transformers' own classes (no remote
code) and compares their float32 logits with mixlab's `host forward` output on the
same token ids (tests/unit/test_interop.cpp runs it).

usage: hf_logits.py HF_DIR MIXLAB_LOGITS.safetensors [HF_DIR MIXLAB_LOGITS ...]

Prints one JSON line per pair: the class transformers chose, the relative RMS
difference of the logits and the weights it did not find (or did not use). Exits 1
when a pair is off (rel-RMS > 1e-5, any weight not loaded). The tokenizers are
checked by hf_tokenizer.py."""
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from transformers.utils import logging

logging.disable_progress_bar()

TOLERANCE = 1e-5


def rel_rms(a, b):
    a, b = a.double(), b.double()
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt()).item()


def main(args):
    ok = True
    torch.set_num_threads(2)
    for hf_dir, mixlab_file in zip(args[::2], args[1::2]):
        ref = load_file(mixlab_file)
        model, info = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, output_loading_info=True)
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=ref["tokens"]).logits
        not_loaded = sorted(set(info.get("missing_keys", [])) | set(info.get("unexpected_keys", [])) |
                            {str(k) for k in info.get("mismatched_keys", [])})
        out = {"dir": hf_dir, "class": type(model).__name__, "rel_rms": rel_rms(logits, ref["logits"]),
               "not_loaded": not_loaded}
        good = out["rel_rms"] <= TOLERANCE and not not_loaded
        ok = ok and good
        print(json.dumps(out), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
