"""Where the base model's weights come from.

Each source turns into a local Hugging Face checkpoint directory (weights + tokenizer) that
recipe step 1 loads in 4 bits, plus the special-token facts the harness checks the tokenizer
against: a library upgrade that reads a tokenizer differently must fail loudly, not train on
the wrong EOS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ModelUnavailable(RuntimeError):
    """The profile's weights cannot be had here; the message says why and what to do."""


@dataclass(frozen=True)
class SpecialTokens:
    """Token facts of a model family: token text -> id, and which one is EOS/BOS/UNK."""

    eos: str
    bos: str
    unk: str
    pad_as_shipped: str
    ids: dict[str, int] = field(default_factory=dict)
    role_markers: tuple[str, ...] = ()
    end_of_turn: str = ""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    name: str
    special_tokens: SpecialTokens


def check_special_tokens(tokenizer, facts: SpecialTokens, where: str) -> None:
    """Raise if the tokenizer's special tokens differ from the model family's known facts."""
    problems = []
    for text, expected in facts.ids.items():
        actual = tokenizer.convert_tokens_to_ids(text)
        if actual != expected:
            problems.append(f"{text!r} has id {actual}, expected {expected}")
    for role in ("eos", "bos", "unk"):
        actual = getattr(tokenizer, f"{role}_token")
        if actual != getattr(facts, role):
            problems.append(f"{role}_token is {actual!r}, expected {getattr(facts, role)!r}")
    if problems:
        raise ModelUnavailable(f"{where}: tokenizer special tokens are wrong: " + "; ".join(problems))


def apply_special_tokens(tokenizer, facts: SpecialTokens) -> None:
    """Set EOS/BOS/UNK/PAD from the known facts (as the model ships them, PAD included)."""
    tokenizer.eos_token = facts.eos
    tokenizer.bos_token = facts.bos
    tokenizer.unk_token = facts.unk
    tokenizer.pad_token = facts.pad_as_shipped
