"""Loads the tokenizer of exported Hugging Face folders with
transformers.AutoTokenizer (no remote code, no sentencepiece package) and checks it
against mixlab's own tokenizer (tests/unit/test_interop.cpp runs it).

usage: hf_tokenizer.py HF_DIR CASES.json [HF_DIR CASES.json ...]

CASES.json, written by the test from mixlab's tokenizer:
  {"cases": [{"text": "...", "ids": [...]}, ...], "unk_token_id": 0 or null}

For each folder, every text must encode to mixlab's ids (with and without special
tokens: mixlab adds none) and decode back to the text; the tokenizer's length must
be config.json's vocab_size; its unk id must be mixlab's, and its bos/eos/pad ids
must be those of config.json and generation_config.json. Prints one JSON line per
folder and exits 1 when any folder is off."""
import json
import sys

from transformers import AutoConfig, AutoTokenizer, GenerationConfig


def check(hf_dir, cases_file):
    with open(cases_file, encoding="utf-8") as f:
        spec = json.load(f)
    tok = AutoTokenizer.from_pretrained(hf_dir)
    config = AutoConfig.from_pretrained(hf_dir)
    generation = GenerationConfig.from_pretrained(hf_dir)
    problems = []
    for case in spec["cases"]:
        text, ids = case["text"], case["ids"]
        got = tok(text, add_special_tokens=False).input_ids
        if got != ids:
            first = next((i for i, (a, b) in enumerate(zip(got, ids)) if a != b), min(len(got), len(ids)))
            problems.append({"text": text[:60], "encode_differs_at": first, "hf": got[first:first + 8],
                             "mixlab": ids[first:first + 8]})
        elif tok(text).input_ids != ids:
            problems.append({"text": text[:60], "special_tokens_added": tok(text).input_ids[:4]})
        decoded = tok.decode(ids)
        if decoded != text:
            problems.append({"text": text[:60], "decoded": decoded[:60]})
    if len(tok) != config.vocab_size:
        problems.append({"len(tokenizer)": len(tok), "vocab_size": config.vocab_size})
    if tok.unk_token_id != spec["unk_token_id"]:
        problems.append({"unk_token_id": tok.unk_token_id, "mixlab": spec["unk_token_id"]})
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        ids = {"tokenizer": getattr(tok, name), "config": getattr(config, name, None),
               "generation_config": getattr(generation, name, None)}
        if len(set(ids.values())) != 1:
            problems.append({name: ids})
    return {"dir": hf_dir, "class": type(tok).__name__, "cases": len(spec["cases"]), "problems": problems}


def main(args):
    ok = True
    for hf_dir, cases_file in zip(args[::2], args[1::2]):
        out = check(hf_dir, cases_file)
        ok = ok and not out["problems"]
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
