"""SmolLM2's GGUF -> bf16 checkpoint conversion: the harness's converter against transformers' loader.

    python benchmarks/gguf_conversion.py [--rounds 3] [--profile] [--smollm2-gguf PATH]

Converts the GGUF into fresh temporary directories, alternating the two converters in one process
(on a shared machine a neighbour's load then weighs on both alike), and prints each round's seconds,
the ratio, and the medians. `--profile` adds cProfile's top entries for one conversion of each.
`convert_with_transformers` is the converter as it was before issue 14; tests/test_gguf.py proves
the harness's converter writes the same checkpoint.
"""

import argparse
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path


def convert_with_transformers(gguf: Path, directory: Path) -> None:
    """`smollm2.convert_gguf` before issue 14: transformers' GGUF loader, then a bf16 copy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.recipe.models import apply_special_tokens, check_special_tokens
    from harness.recipe.models.smollm2 import SMOLLM2_SPECIAL_TOKENS, verify_gguf

    verify_gguf(gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    apply_special_tokens(tokenizer, SMOLLM2_SPECIAL_TOKENS)
    check_special_tokens(tokenizer, SMOLLM2_SPECIAL_TOKENS, str(gguf))
    gguf_model = _transformers_dequantized(gguf)
    config = gguf_model.config
    config.quantization_config = None
    if hasattr(config, "__dict__"):
        config.__dict__.pop("quantization_config", None)
    config.eos_token_id = SMOLLM2_SPECIAL_TOKENS.ids["<|im_end|>"]
    config.bos_token_id = SMOLLM2_SPECIAL_TOKENS.ids["<|im_start|>"]
    config.pad_token_id = SMOLLM2_SPECIAL_TOKENS.ids["<|im_end|>"]
    config.dtype = "bfloat16"
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(gguf_model.state_dict())
    plain = plain.to(torch.bfloat16)
    plain.generation_config.eos_token_id = config.eos_token_id
    plain.generation_config.bos_token_id = config.bos_token_id
    plain.generation_config.pad_token_id = config.pad_token_id
    plain.save_pretrained(directory)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(directory)


def _transformers_dequantized(gguf: Path):
    from transformers import AutoModelForCausalLM

    try:
        from transformers import GgufConfig

        return AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
    except ImportError:
        return AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)


def convert_with_harness(gguf: Path, directory: Path) -> None:
    from harness.recipe.models import smollm2

    smollm2.convert_gguf(gguf, directory)


CONVERTERS = {"transformers": convert_with_transformers, "harness": convert_with_harness}


def timed(convert, gguf: Path, profiler: cProfile.Profile | None = None) -> float:
    with tempfile.TemporaryDirectory(prefix="gguf-conversion-") as scratch:
        start = time.perf_counter()
        if profiler:
            profiler.runcall(convert, gguf, Path(scratch) / "checkpoint")
        else:
            convert(gguf, Path(scratch) / "checkpoint")
        return time.perf_counter() - start


def top_entries(profiler: cProfile.Profile, count: int = 15) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(count)
    return out.getvalue()


def main(argv=None):
    from harness.recipe.models import smollm2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="conversions of each converter (default 3)")
    parser.add_argument("--profile", action="store_true", help="also profile one conversion of each")
    parser.add_argument("--smollm2-gguf", default=os.environ.get("YODA_HARNESS_SMOLLM2_GGUF"))
    args = parser.parse_args(argv)
    gguf = smollm2.locate_gguf(args.smollm2_gguf)
    # Imported before any timing, so neither converter pays for the modules both use.
    import gguf as _gguf  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401

    seconds = {name: [] for name in CONVERTERS}
    print(f"{'round':>5} | {'transformers s':>14} | {'harness s':>9} | ratio")
    for round_number in range(1, args.rounds + 1):
        # Alternate which goes first, so neither always runs on the warmer file cache.
        order = list(CONVERTERS) if round_number % 2 else list(reversed(CONVERTERS))
        for name in order:
            seconds[name].append(timed(CONVERTERS[name], gguf))
        old, new = seconds["transformers"][-1], seconds["harness"][-1]
        print(f"{round_number:>5} | {old:>14.2f} | {new:>9.2f} | {old / new:.2f}", flush=True)
    old, new = statistics.median(seconds["transformers"]), statistics.median(seconds["harness"])
    print(f"median | {old:>13.2f} | {new:>9.2f} | {old / new:.2f}")
    if args.profile:
        for name, convert in CONVERTERS.items():
            profiler = cProfile.Profile()
            total = timed(convert, gguf, profiler)
            print(f"\n== {name}: {total:.2f} s under cProfile ==\n{top_entries(profiler)}")


if __name__ == "__main__":
    main()
