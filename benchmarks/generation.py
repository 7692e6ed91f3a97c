"""Evaluation speed: batched greedy generation vs one prompt at a time (the recipe's helper).

    python benchmarks/generation.py RUN_DIR [--batch-sizes 32,128] [--smollm2-gguf PATH]

Loads the run's base model + saved adapter once, generates for every evaluation sentence batched
(once per batch size asked for; default: the run's own) and one prompt at a time, prints a table
(seconds, speed-up over one at a time, outputs identical to one at a time) and every output of the
first batch size that differs, with why.
"""

import argparse
import json
import os
import time
from pathlib import Path


def one_at_a_time(model, tokenizer, sentences, max_new_tokens):
    import torch

    from harness.recipe.generate import build_prompt

    outputs = []
    for sentence in sentences:
        batch = tokenizer(build_prompt(tokenizer, sentence), add_special_tokens=False, return_tensors="pt").to(model.device)
        with torch.no_grad():
            ids = model.generate(**batch, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                 max_new_tokens=max_new_tokens, do_sample=False)
        new = ids[0][batch["input_ids"].shape[1]:].tolist()
        if tokenizer.eos_token_id in new:
            new = new[:new.index(tokenizer.eos_token_id) + 1]
        outputs.append(new)
    return outputs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--smollm2-gguf", default=os.environ.get("YODA_HARNESS_SMOLLM2_GGUF"))
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--batch-sizes", default=None, help="comma-separated; default: the run's generation.batch_size")
    args = parser.parse_args()
    import torch
    from transformers import AutoTokenizer

    from harness import files
    from harness.recipe import profiles, qlora_sft
    from harness.recipe.config import RecipeConfig
    from harness.run.options import default_cache_dir

    run_dir = Path(args.run_dir)
    manifest = files.read_json(run_dir / "run.json")
    config = RecipeConfig.from_dict(manifest["config"])
    cache = Path(args.cache_dir or default_cache_dir())
    options = profiles.ModelOptions(models_dir=cache / "models", smollm2_gguf=args.smollm2_gguf)
    checkpoint = profiles.PROFILES[manifest["profile"]].build_checkpoint(options)
    tokenizer = qlora_sft.prepare_tokenizer(AutoTokenizer.from_pretrained(run_dir / "adapter"))
    model = qlora_sft.reload_tuned_model(checkpoint, run_dir / "adapter", config)
    sentences = [row["source"] for row in files.read_jsonl(run_dir / "generations_tuned.jsonl")]
    max_new = config.generation.max_new_tokens

    def timed(fn):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return result, time.perf_counter() - start

    qlora_sft.generate(model, tokenizer, sentences[:2], config)  # warm-up: CUDA context, kernels, allocator
    sizes = [int(n) for n in args.batch_sizes.split(",")] if args.batch_sizes else [config.generation.batch_size]
    batched = {n: timed(lambda: qlora_sft.generate(model, tokenizer, sentences,
                                                config.with_overrides({"generation.batch_size": n})))
               for n in sizes}
    single, single_s = timed(lambda: one_at_a_time(model, tokenizer, sentences, max_new))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print("| device | prompts | how | s | speed-up over one at a time | identical to one at a time |")
    print("|---|---|---|---|---|---|")
    print(f"| {device} | {len(sentences)} | one at a time | {single_s:.2f} | 1.0x | |")
    rows = []
    for n, (outputs, seconds) in batched.items():
        same = sum(b.token_ids == o for b, o in zip(outputs, single))
        rows.append({"batch_size": n, "seconds": round(seconds, 3), "speedup": round(single_s / seconds, 2),
                     "identical": same})
        print(f"| {device} | {len(sentences)} | batches of {n} | {seconds:.2f} | {single_s / seconds:.1f}x | "
              f"{same}/{len(sentences)} |")
    first_outputs = batched[sizes[0]][0]
    differing = [(s, b.token_ids, o) for s, b, o in zip(sentences, first_outputs, single) if b.token_ids != o]
    for sentence, b, o in differing:
        first = next((i for i, (x, y) in enumerate(zip(b, o)) if x != y), min(len(b), len(o)))
        print(f"differs: {sentence!r}: first different token at {first} "
              f"(batched {tokenizer.decode(b[first:first + 5])!r} vs single {tokenizer.decode(o[first:first + 5])!r}); "
              "left padding changes the reduction order of the attention sums, so near-tied greedy choices can flip")
    print(json.dumps({"device": device, "prompts": len(sentences), "one_by_one_s": round(single_s, 3),
                      "batched": rows}))


if __name__ == "__main__":
    main()
