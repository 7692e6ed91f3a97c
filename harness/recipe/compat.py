"""What differs between library releases, adapted in one place and recorded.

The recipe is written against today's libraries. Older releases name an argument differently,
return other keys, apply another default or have another private API; each function here adapts
one such difference for the *installed* release and returns an `Adaptation` saying what it did.
Inside `recording()` (the recipe's run opens one) every adaptation is also collected, so the
run's record lists them under `compat`: a run on an old release never differs silently.

    sft_config(kwargs, left_to_library)  SFTConfig: renamed / missing arguments; library defaults
    generation_inputs(model, batch)      tokenizer outputs the model's forward does not take
    unquantized_load_dtype(config)       the dtype non-quantized layers load in under 4-bit
    prepared_rows(trainer, ...)          trl's private dataset preparation (two signatures)
    completion_only_collator(trainer)    a collator that masks the prompt, whichever trl built it
    dtype_argument()                     `dtype=` (transformers >= 4.56) or `torch_dtype=`
    template_ids(tokenizer, ...)         apply_chat_template(tokenize=True): a list, or an encoding
    packing(args)                        how trl's wrapped packing cuts examples into rows (EOS added,
                                         groups, shorter rows kept or dropped)
    packing_added_tokens(examples, ...)  tokens trl's packing adds between examples (EOS before 0.15)
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, Iterator

# Current trl name -> the name older trl releases used (trl 0.20 removed `max_seq_length`).
SFT_RENAMES = {"max_length": "max_seq_length"}


@dataclass(frozen=True)
class Adaptation:
    """One release difference the harness adapted: which library, which setting, what it did."""

    library: str  # "trl 0.14.0"
    setting: str  # the recipe's name for what was adapted: "max_length", "generation inputs"
    action: str  # what was done: "passed as max_seq_length (this trl's name)"

    def describe(self) -> str:
        return f"{self.setting} {self.action}"

    def recorded(self) -> "RecordedAdaptation":
        return RecordedAdaptation(**asdict(self), description=f"{self.library}: {self.describe()}")


@dataclass(frozen=True, kw_only=True)
class RecordedAdaptation:
    """An adaptation as the run records it (run.json's `compat`): its one line for people too."""

    library: str
    setting: str
    action: str
    description: str  # "trl 0.14.0: max_length passed as max_seq_length (this trl's name)"


_RECORDER: contextvars.ContextVar[list | None] = contextvars.ContextVar("harness_compat_recorder", default=None)


@contextlib.contextmanager
def recording() -> Iterator[list[Adaptation]]:
    """Collect every adaptation made inside the block (each distinct one once), in order."""
    collected: list[Adaptation] = []
    token = _RECORDER.set(collected)
    try:
        yield collected
    finally:
        _RECORDER.reset(token)


def _note(adaptations: list[Adaptation]) -> list[Adaptation]:
    collected = _RECORDER.get()
    if collected is not None:
        collected.extend(a for a in adaptations if a not in collected)
    return adaptations


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _major_minor(package: str) -> tuple[int, int]:
    from packaging.version import Version

    parsed = Version(version(package) or "0")
    return parsed.major, parsed.minor


def library(package: str) -> str:
    return f"{package} {version(package) or 'absent'}"


# ------------------------------------------------------------------ trl.SFTConfig
def sft_config(kwargs: dict[str, Any], left_to_library: tuple[str, ...] = ()):
    """`trl.SFTConfig(**kwargs)` for the installed trl, and the adaptations that needed.

    - a current argument an older trl knows under its old name is passed under that name
      (`max_length` -> `max_seq_length` before trl 0.20);
    - an argument this trl does not have is dropped (`packing_strategy` before 0.19);
    - each name in `left_to_library` is not passed at all: the recipe variant leaves it to the
      library's default, and what the library chose is recorded (bf16, packing_strategy).
    """
    import dataclasses

    from trl import SFTConfig

    trl = library("trl")
    accepted = {f.name for f in dataclasses.fields(SFTConfig)}
    passed, adaptations = {}, []
    for name, value in kwargs.items():
        if name in left_to_library:
            continue
        if name in accepted:
            passed[name] = value
        elif name in SFT_RENAMES and SFT_RENAMES[name] in accepted:
            passed[SFT_RENAMES[name]] = value
            adaptations.append(Adaptation(trl, name, f"passed as {SFT_RENAMES[name]} (this trl's name)"))
        elif value is not None:
            adaptations.append(Adaptation(trl, f"{name}={value!r}", "dropped: this trl's SFTConfig has no such argument"))
    config = SFTConfig(**passed)
    for name in left_to_library:
        chosen = getattr(config, name, None) if name in accepted else None
        what = (f"left to the library: this trl chose {chosen!r}" if name in accepted
                else "left to the library: this trl has no such setting")
        adaptations.append(Adaptation(trl, name, what))
    return config, _note(adaptations)


# ------------------------------------------------------------------ generation
def generation_inputs(model, batch) -> tuple[dict, list[Adaptation]]:
    """The tokenizer's encoding, less `token_type_ids` when the model's forward does not name them.

    transformers 4.x tokenizers return `token_type_ids` for Phi-3-style tokenizers, and
    `generate` refuses model kwargs the model does not use (`ValueError: The following
    model_kwargs are not used by the model: ['token_type_ids']`); 5.x no longer returns them.
    (A forward's `**kwargs` does not count: in 4.x they are attention kwargs, not token types.)
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "token_type_ids" not in batch or "token_type_ids" in inspect.signature(base.forward).parameters:
        return dict(batch), []
    inputs = {name: value for name, value in batch.items() if name != "token_type_ids"}
    adaptation = Adaptation(library("transformers"), "generation inputs",
                            f"token_type_ids dropped: the tokenizer returns them and {type(base).__name__}.forward "
                            "takes none (generate would refuse them)")
    return inputs, _note([adaptation])


# ------------------------------------------------------------------ memory prediction
def unquantized_load_dtype(model_config):
    """(dtype, adaptation or None): the dtype non-quantized layers get from a 4-bit load with no dtype.

    transformers 4.x's bitsandbytes quantizer overrides an unset dtype with float16 ("Overriding
    torch_dtype=None with torch_dtype=torch.float16 due to requirements of bitsandbytes"), so the
    embeddings and the head load in fp16 whatever the checkpoint holds; 5.x loads the checkpoint's
    dtype. The memory prediction must use the rule of the installed release.
    """
    import torch

    if _major_minor("transformers") < (5, 0):
        return torch.float16, Adaptation(library("transformers"), "memory prediction",
                                         "uses float16 for the unquantized layers (transformers 4.x's "
                                         "bitsandbytes rule when no dtype is given)")
    dtype = getattr(model_config, "dtype", None) or getattr(model_config, "torch_dtype", None) or "float32"
    return (getattr(torch, dtype) if isinstance(dtype, str) else dtype), None


def record(adaptation: Adaptation | None) -> None:
    """Note an adaptation made by a caller (e.g. the memory prediction) in the active recording."""
    if adaptation is not None:
        _note([adaptation])


# ------------------------------------------------------------------ trl's packing
# `datasets.Dataset.map(batched=True)`'s default batch: trl's packing map leaves it as is, so every
# thousand examples are concatenated and cut into rows apart, each batch with a shorter row of its own.
MAP_BATCH_EXAMPLES = 1000


@dataclass(frozen=True)
class Packing:
    """How the installed trl's wrapped packing cuts tokenized examples into rows (trl's sources at the tags).

    - `appends_eos`: "every example" (ConstantLengthDataset, trl 0.12-0.14), "where missing"
      (trl 0.16.x), or "" (0.15, 0.17 on: conversational data is packed as templated);
    - `buffer_chars`: ConstantLengthDataset concatenates a buffer of examples at a time, filled until
      it holds this many characters of formatted text; None: `MAP_BATCH_EXAMPLES` examples at a time;
    - `keeps_partial_row`: each group's last, shorter row is kept (pack_examples, pack_dataset) or
      dropped (ConstantLengthDataset yields only rows of exactly the length).
    """

    max_length: int
    appends_eos: str
    buffer_chars: float | None
    keeps_partial_row: bool

    def with_separator(self, ids: list[int], eos: int) -> list[int]:
        """One example as the packer concatenates it."""
        if self.appends_eos == "every example" or (self.appends_eos == "where missing" and ids[-1:] != [eos]):
            return ids + [eos]
        return ids

    def groups(self, example_ids: list[list[int]], text_chars: list[int]) -> list[list[list[int]]]:
        """The examples concatenated together before cutting, in order."""
        if self.buffer_chars is None:
            return [example_ids[i:i + MAP_BATCH_EXAMPLES] for i in range(0, len(example_ids), MAP_BATCH_EXAMPLES)]
        groups, current, filled = [], [], 0
        for ids, chars in zip(example_ids, text_chars, strict=True):
            current.append(ids)
            filled += chars
            if filled >= self.buffer_chars:  # ConstantLengthDataset stops filling once the buffer is full
                groups.append(current)
                current, filled = [], 0
        return groups + ([current] if current else [])

    def group_lengths(self, example_ids: list[list[int]], text_chars: list[int], eos: int) -> list[int]:
        """Tokens each group concatenates, separators included."""
        return [sum(len(self.with_separator(ids, eos)) for ids in group) for group in self.groups(example_ids, text_chars)]

    def rows(self, example_ids: list[list[int]], text_chars: list[int], eos: int) -> int:
        """Rows the packed dataset holds: every group cut into rows of `max_length`."""
        lengths = self.group_lengths(example_ids, text_chars, eos)
        if self.keeps_partial_row:
            return sum(-(-n // self.max_length) for n in lengths)
        return sum(n // self.max_length for n in lengths)

    def dropped_tokens(self, example_ids: list[list[int]], text_chars: list[int], eos: int) -> int:
        """Tokens of the shorter rows the packer drops (none where it keeps them)."""
        if self.keeps_partial_row:
            return 0
        return sum(n % self.max_length for n in self.group_lengths(example_ids, text_chars, eos))

    def describe(self) -> str:
        """The adaptation to record, where this trl packs otherwise than trl 0.15 on."""
        if self.buffer_chars is None:
            return ""
        return (f"goes through ConstantLengthDataset: {self.buffer_chars:g} characters of examples at a time, "
                "each buffer's shorter last row dropped, in the row count's prediction")


def packing(args) -> Packing:
    """The installed trl's wrapped packing, for the trainer's `args` (an `SFTConfig`)."""
    major_minor = _major_minor("trl")
    if major_minor < (0, 15):
        # ConstantLengthDataset: max_buffer_size = seq_length * chars_per_token * num_of_sequences.
        buffer = args.max_seq_length * args.chars_per_token * args.num_of_sequences
        found = Packing(args.max_seq_length, "every example", buffer, keeps_partial_row=False)
    else:
        length = args.max_length if hasattr(args, "max_length") else args.max_seq_length  # renamed in trl 0.20
        found = Packing(length, "where missing" if major_minor == (0, 16) else "", None, keeps_partial_row=True)
    if found.describe():
        _note([Adaptation(library("trl"), "packing", found.describe())])
    return found


def packs_wrapped(args) -> bool:
    """Whether a trainer built with `args` packs 'wrapped' (trl before 0.19 has no other packing)."""
    return bool(args.packing) and getattr(args, "packing_strategy", "wrapped") == "wrapped"


def packing_added_tokens(example_ids: list[list[int]], eos_token_id: int, found: Packing) -> int:
    """Tokens `found` (the installed trl's packing) adds to the tokenized conversations before cutting rows.

    Without them the step count of wrapped packing is predicted too low on the 2024 libraries (348
    steps for trl 0.12.1's 357 on tiny) and the packing check calls a working release BROKEN.
    """
    added = sum(len(found.with_separator(ids, eos_token_id)) - len(ids) for ids in example_ids)
    if added:
        how = {"every example": "appends EOS after every example",
               "where missing": "appends EOS to every example that does not end with it"}[found.appends_eos]
        _note([Adaptation(library("trl"), "packing", f"{how}: {added} tokens more to pack, in the step count's prediction")])
    return added


# ------------------------------------------------------------------ trl's dataset preparation
def prepared_rows(trainer, dataset, args, packing: bool, name: str) -> list[dict]:
    """The rows of `trainer._prepare_dataset` for the installed trl (a private API, two signatures).

    trl >= 0.15 takes `(dataset, processing_class, args, packing, formatting_func, name)`; trl
    0.12-0.14 takes the settings one by one and finds the formatting function itself from the
    dataset's columns (messages, or prompt/completion strings: the "instruction" format).
    """
    parameters = inspect.signature(trainer._prepare_dataset).parameters
    if "args" in parameters:
        return _rows(trainer._prepare_dataset(dataset, trainer.processing_class, args, packing, None, name))
    from trl.extras.dataset_formatting import get_formatting_func_from_dataset

    record(Adaptation(library("trl"), "dataset preparation",
                      "called with this trl's older signature (settings one by one, formatting function "
                      "found from the dataset's columns)"))
    formatting_func = get_formatting_func_from_dataset(dataset, trainer.processing_class)
    dataset_kwargs = dict(args.dataset_kwargs or {})
    if formatting_func is not None:
        dataset_kwargs["add_special_tokens"] = False
    prepared = trainer._prepare_dataset(dataset, trainer.processing_class, packing, args.dataset_text_field,
                                        args.max_seq_length, formatting_func, args.num_of_sequences,
                                        args.chars_per_token, remove_unused_columns=args.remove_unused_columns,
                                        **dataset_kwargs)
    return _rows(prepared)


def _rows(prepared) -> list[dict]:
    """Rows of a prepared dataset; old trl packs into a `ConstantLengthDataset`, iterable only."""
    if hasattr(prepared, "__getitem__") and hasattr(prepared, "__len__"):
        try:
            return [prepared[i] for i in range(len(prepared))]
        except (TypeError, NotImplementedError):
            pass
    if hasattr(prepared, "infinite"):
        prepared.infinite = False
    return list(prepared)


@contextlib.contextmanager
def completion_only_collator(trainer):
    """The trainer's collator, masking the prompt as with `completion_only_loss=True`, for the block.

    trl 0.16-0.18's collator takes `completion_only_loss` when the trainer builds it (False for
    conversational data) and reads only its own copy; a harness probe of completion-only masking
    must switch that copy too, as a trainer built with the option would have it.
    """
    collator = trainer.data_collator
    had = hasattr(collator, "completion_only_loss")
    saved = getattr(collator, "completion_only_loss", None)
    if had and saved is not True:
        collator.completion_only_loss = True
        record(Adaptation(library("trl"), "completion-only probe",
                          "switched the collator's own completion_only_loss on (this trl's collator keeps "
                          "the value it was built with)"))
    try:
        yield collator
    finally:
        if had:
            collator.completion_only_loss = saved


def dtype_argument() -> str:
    """The name `from_pretrained` / `from_config` take the dtype under: `dtype` from transformers
    4.56 (`torch_dtype` is deprecated there), `torch_dtype` before."""
    if _major_minor("transformers") >= (4, 56):
        return "dtype"
    record(Adaptation(library("transformers"), "model dtype", "passed as torch_dtype (this transformers' name)"))
    return "torch_dtype"


def template_ids(tokenizer, messages, add_generation_prompt: bool = False) -> list[int]:
    """Token ids of the chat template: transformers 4.x returns a list, 5.x an encoding (a mapping)."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
