"""The recipe's configuration: one dataclass per phase, defaults = the reference recipe.

Every field is what the code really passes to the library object named in its section
(`BitsAndBytesConfig`, `LoraConfig`, `SFTConfig`, `generate`), so the config in a run's
directory is the whole truth about what ran. Profiles override fields with dotted keys
(``"training.learning_rate": 2e-3``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from harness import env

PHI3_TARGET_MODULES = ("o_proj", "qkv_proj", "gate_up_proj", "down_proj")


def one_of(*choices: Any):
    """A field that takes one of a few values, the first its default; the choices are kept with the
    field (as trl's `metadata={"choices": ...}`), so an override outside them fails, naming the
    option, before any model is loaded."""
    return field(default=choices[0], metadata={"choices": choices})


@dataclass
class QuantizationConfig:
    """Arguments of `transformers.BitsAndBytesConfig` (recipe step 1)."""

    load_in_4bit: bool = True
    bnb_4bit_quant_type: str = one_of("nf4", "fp4")
    bnb_4bit_use_double_quant: bool = True
    # The recipe computes in fp32; a string so the config stays JSON-serialisable.
    bnb_4bit_compute_dtype: str = one_of("float32", "bfloat16", "float16")

    def to_bnb(self):
        import torch
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=self.load_in_4bit,
            bnb_4bit_quant_type=self.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=self.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=getattr(torch, self.bnb_4bit_compute_dtype),
        )


@dataclass
class LoraSettings:
    """Arguments of `peft.LoraConfig` (recipe step 2)."""

    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    bias: str = one_of("none", "all", "lora_only")
    task_type: str = "CAUSAL_LM"
    target_modules: list[str] = field(default_factory=lambda: list(PHI3_TARGET_MODULES))

    def to_peft(self):
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            bias=self.bias,
            task_type=self.task_type,
            target_modules=list(self.target_modules),
        )


@dataclass
class DataSettings:
    """Where the Yoda sentences come from and how they become training examples (step 3)."""

    # "hub" (dvgodoy/yoda_sentences, falling back to the bundled copy), "bundled", or a path.
    source: str = "hub"
    # The prompt and the answer trained on and scored against (`harness.recipe.data.Columns` routes them
    # to validation, the split, the training examples, scoring and the report). A `translation`
    # column, where the data has one, is scored as a second reference.
    source_column: str = "sentence"
    target_column: str = "translation_extra"
    # Share of rows, chosen by a content hash of the source column, held out for evaluation.
    eval_fraction: float = 0.1
    # "conversational" (messages, the recipe), "prompt_completion" (trl's conversational
    # prompt/completion pair) or "instruction" (prompt/completion *strings*: the recipe as first
    # published in 2024, which trl <= 0.14 chat-templated itself and trl 0.15 stopped templating).
    format: str = one_of("conversational", "prompt_completion", "instruction")


@dataclass
class TokenizerSettings:
    """The recipe's tokenizer fixes (step 4)."""

    # "unk_token": the recipe's fix, `pad_token = unk_token`, so EOS stays distinct from PAD and
    # keeps its labels; "as_shipped": Phi-3's own PAD == EOS (the recipe before that fix).
    pad_token: str = "unk_token"


@dataclass
class TrainingSettings:
    """Arguments of `trl.SFTConfig` (step 5). `bf16="auto"` = the recipe's hardware check.

    `packing_strategy` and `bf16` may be None: not passed, left to the installed trl's default
    (the recipe before its authors pinned them); the run records what the library chose.
    """

    per_device_train_batch_size: int = 16
    auto_find_batch_size: bool = True
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = True
    gradient_checkpointing_use_reentrant: bool = False
    max_length: int = 64
    packing: bool = True
    packing_strategy: str | None = one_of("wrapped", "bfd", "ffd", None)
    num_train_epochs: float = 10
    learning_rate: float = 3e-4
    optim: str = "paged_adamw_8bit"
    logging_steps: int = 10
    bf16: str | bool | None = one_of("auto", True, False, None)
    completion_only_loss: bool | None = None
    seed: int = 42

    def left_to_library(self) -> tuple[str, ...]:
        """The SFTConfig arguments this config does not pass (None: the library's default)."""
        return tuple(name for name in ("packing_strategy", "bf16") if getattr(self, name) is None)

    def resolved_bf16(self) -> bool | None:
        if self.bf16 is None:
            return None
        if self.bf16 != "auto":
            return bool(self.bf16)
        import torch

        return env.gpu_available() and torch.cuda.is_bf16_supported(including_emulation=False)

    def sft_kwargs(self, output_dir: str) -> dict[str, Any]:
        """The recipe's `SFTConfig` arguments, named as in current trl."""

        return dict(
            output_dir=output_dir,
            per_device_train_batch_size=self.per_device_train_batch_size,
            auto_find_batch_size=self.auto_find_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            gradient_checkpointing=self.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": self.gradient_checkpointing_use_reentrant},
            max_length=self.max_length,
            packing=self.packing,
            packing_strategy=self.packing_strategy,
            num_train_epochs=self.num_train_epochs,
            learning_rate=self.learning_rate,
            optim=self.optim,
            logging_steps=self.logging_steps,
            bf16=self.resolved_bf16(),
            completion_only_loss=self.completion_only_loss,
            seed=self.seed,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            use_cpu=not env.gpu_available(),
        )

    def to_sft_config(self, output_dir: str):
        """`trl.SFTConfig` for the installed trl, and the adaptations that needed (descriptions).

        The adapting (renamed, missing and library-default arguments) lives in `harness.recipe.compat`.
        """
        from harness.recipe import compat

        sft, adaptations = compat.sft_config(self.sft_kwargs(output_dir), self.left_to_library())
        return sft, [adaptation.describe() for adaptation in adaptations]


@dataclass
class GenerationSettings:
    """Arguments of `model.generate` (step 7); greedy, batched over the evaluation split.

    Always greedy: there is no `do_sample` (see RETIRED).
    """

    max_new_tokens: int = 64
    batch_size: int = 32


# Fields the config had and recorded, but the code never passed to a library object. A recorded
# config that has one (a run directory, a baseline entry) is read and compared without it, so
# what was recorded stays comparable; an override of one is refused, saying why.
RETIRED: dict[str, str] = {
    # It was recorded as false and generate() was always called greedy. Passing it would make a
    # run sample: that needs a seed of its own plus temperature / top-k / top-p, which the
    # checkpoint's generation_config would otherwise choose unrecorded, and the checks read
    # greedy output (stop rates, the in-memory vs reloaded adapter agreement, BLEU bands).
    "generation.do_sample": "generation is greedy: do_sample was never passed to generate() and was removed",
}


def without_retired(raw: dict[str, Any]) -> dict[str, Any]:
    """A recorded config (sections of fields) without the RETIRED fields."""
    copy = {section: dict(values) if isinstance(values, dict) else values for section, values in raw.items()}
    for dotted in RETIRED:
        section, _, key = dotted.partition(".")
        if isinstance(copy.get(section), dict):
            copy[section].pop(key, None)
    return copy


@dataclass
class RecipeConfig:
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataSettings = field(default_factory=DataSettings)
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RecipeConfig":
        """The config a recorded `to_dict()` describes (a run's record, a baseline entry), every
        field checked as an override is; RETIRED fields are dropped and a section recorded before
        it existed (the tokenizer's) reads as its default, the recipe's own."""
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(sections)
        if unknown:
            raise ValueError(f"unknown recipe config section(s): {sorted(unknown)}")
        config = cls()
        for section, values in without_retired(raw).items():
            for key, value in values.items():
                config = config.with_overrides({f"{section}.{key}": value})
        return config

    def with_overrides(self, overrides: dict[str, Any]) -> "RecipeConfig":
        """A copy with dotted-key overrides applied; an unknown key is an error naming it."""
        config = copy.deepcopy(self)
        for dotted, value in overrides.items():
            if dotted in RETIRED:
                raise ValueError(f"recipe config option {dotted!r} no longer exists: {RETIRED[dotted]}")
            section_name, _, key = dotted.partition(".")
            section = getattr(config, section_name, None)
            fields = {f.name: f for f in dataclasses.fields(section)} if dataclasses.is_dataclass(section) else {}
            if key not in fields:
                raise ValueError(f"unknown recipe config option {dotted!r}")
            check_value(dotted, value, typing.get_type_hints(type(section))[key], fields[key].metadata.get("choices"))
            setattr(section, key, value)
        return config

    def fingerprint(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def check_value(dotted: str, value: Any, annotation, choices: tuple | None = None) -> None:
    """Raise ValueError naming the option when `value` is not of the option's declared type or choices."""
    if choices is not None:
        # Same value and type: 1 is not True, "none" is not None.
        if not any(value == allowed and type(value) is type(allowed) for allowed in choices):
            raise ValueError(f"{dotted}={value!r}: expected one of {', '.join(map(repr, choices))}")
        return
    if not _matches(value, annotation):
        raise ValueError(f"{dotted}={value!r}: expected {_describe(annotation)}, got {type(value).__name__}")


def _matches(value: Any, annotation) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if annotation is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_matches(item, args[0]) for item in value) if args else isinstance(value, list)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _describe(annotation) -> str:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if typing.get_origin(annotation) is list:
        return f"a list of {_describe(args[0])}" if args else "a list"
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))
