"""Phi-3-mini: the recipe's reference model from the hub/cache/path, or its shape with random weights."""

from __future__ import annotations

import os
from pathlib import Path

from harness.recipe.models import Checkpoint, ModelUnavailable, SpecialTokens, building

HUB_MODEL_ID = "microsoft/Phi-3-mini-4k-instruct"

# Phi-3's chat template, verbatim from the model's tokenizer_config.json.
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# Added tokens of Phi-3's tokenizer, in id order from 32000.
PHI3_ADDED_TOKENS = (
    "<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
    "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>",
)

PHI3_SPECIAL_TOKENS = SpecialTokens(
    eos="<|endoftext|>",
    bos="<s>",
    unk="<unk>",
    pad_as_shipped="<|endoftext|>",
    ids={"<unk>": 0, "<s>": 1, "<|endoftext|>": 32000, "<|assistant|>": 32001, "<|end|>": 32007, "<|user|>": 32010},
    role_markers=("<|user|>", "<|assistant|>"),
    end_of_turn="<|end|>",
)

# config.json of microsoft/Phi-3-mini-4k-instruct (the fields that shape the model).
PHI3_MINI_CONFIG = dict(
    vocab_size=32064,
    hidden_size=3072,
    intermediate_size=8192,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    hidden_act="silu",
    max_position_embeddings=4096,
    original_max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    sliding_window=2047,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=32000,
    pad_token_id=32000,
    attention_dropout=0.0,
    embd_pdrop=0.0,
    resid_pdrop=0.0,
    torch_dtype="bfloat16",
)


def phi3_mini_config():
    from transformers import Phi3Config

    return Phi3Config(**PHI3_MINI_CONFIG)


def locate_phi3(path_option: str | None = None, model_id: str = HUB_MODEL_ID, revision: str | None = None) -> Checkpoint:
    """The real Phi-3-mini: a local path, the local HF cache, or the hub (when reachable)."""
    path = path_option or os.environ.get("YODA_HARNESS_PHI3_PATH")
    if path:
        if not (Path(path) / "config.json").exists():
            raise ModelUnavailable(f"Phi-3 path {path}: no config.json there")
        return Checkpoint(Path(path), model_id, PHI3_SPECIAL_TOKENS)
    try:
        from huggingface_hub import snapshot_download

        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        local = snapshot_download(model_id, revision=revision, local_files_only=offline)
    except Exception as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelUnavailable(
            f"{model_id} is neither in the local HF cache nor reachable on the hub ({reason}); "
            "set YODA_HARNESS_PHI3_PATH (or pass --yoda-phi3-path DIR to pytest, --phi3-path DIR to the CLI)"
        ) from error
    return Checkpoint(Path(local), model_id, PHI3_SPECIAL_TOKENS)


def phi3_cached(path_option: str | None = None, model_id: str = HUB_MODEL_ID) -> bool:
    """Whether real Phi-3 weights are on this machine, without touching the network."""
    if path_option or os.environ.get("YODA_HARNESS_PHI3_PATH"):
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:
        return False


def build_phi3_shape(directory: Path, tokenizer_builder) -> Checkpoint:
    """Phi-3-mini's exact architecture with random bf16 weights, saved as a checkpoint.

    Built on the GPU when there is one (12 s for 3.8B parameters there; the CPU needs minutes
    and 15 GB). Memory and parameter figures depend only on the architecture, so they match
    the real model's.
    """
    import torch
    from transformers import Phi3ForCausalLM

    if (directory / "config.json").exists():
        return Checkpoint(directory, "phi3-shape (random weights)", PHI3_SPECIAL_TOKENS)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = Phi3ForCausalLM._from_config(phi3_mini_config(), dtype=torch.bfloat16)
    with building(directory) as partial:
        model.save_pretrained(partial)
        tokenizer_builder().save_pretrained(partial)
    del model
    return Checkpoint(directory, "phi3-shape (random weights)", PHI3_SPECIAL_TOKENS)


def phi3_identity(path_option: str | None, models_dir: Path, model_id: str = HUB_MODEL_ID) -> str:
    """What makes the real Phi-3's weights what they are: the hub snapshot's commit, or, for a local
    directory, the sha256 of its weight files (a local copy and the hub model never share a key)."""
    path = path_option or os.environ.get("YODA_HARNESS_PHI3_PATH")
    if not path:
        try:
            from huggingface_hub import try_to_load_from_cache

            config = try_to_load_from_cache(model_id, "config.json")
        except Exception:
            config = None
        if isinstance(config, str) and Path(config).parent.parent.name == "snapshots":
            return f"hub:{model_id}@{Path(config).parent.name}"
        return f"hub:{model_id}@unresolved"  # not on this machine: cannot run, key unused
    return f"local:{_weights_digest(Path(path), models_dir)}"


def _weights_digest(directory: Path, models_dir: Path) -> str:
    """sha256 over the directory's weight files; cached by (path, size, mtime) since it reads gigabytes."""
    import hashlib
    import json

    from harness.files import file_sha256

    weights = sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
    stamp = json.dumps([[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in weights])
    cache = models_dir / "phi3-weight-digests.json"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if stamp not in known:
        digest = hashlib.sha256()
        for weight in weights:
            digest.update(f"{weight.name}:{file_sha256(weight)}\n".encode())
        known[stamp] = digest.hexdigest()[:16]
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known))
    return known[stamp]
