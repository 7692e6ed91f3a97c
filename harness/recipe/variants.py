"""Named recipe variants: the recipe as first published, as republished, and today's.

Each workaround the recipe's authors added after a library upgrade broke it is a config switch;
a variant is a set of those switches. A regression only shows on a variant that does not work
around it, so a history run names its variant (`pytest suites --yoda-variant 2024`,
`python -m harness run --variant 2024`), and the matrix table says which variant each row ran.

| switch (config key)              | workaround                          | without it                          |
|----------------------------------|-------------------------------------|-------------------------------------|
| data.format                      | conversational `messages`           | prompt/completion strings (2024)    |
| tokenizer.pad_token              | `pad = unk` (EOS distinct from PAD) | Phi-3's shipped PAD == EOS          |
| training.packing_strategy        | "wrapped", passed explicitly        | None: the library's default         |
| training.bf16                    | "auto" (the hardware check)         | None: the library's default         |

`max_length` is always passed; on a trl that has only `max_seq_length` (< 0.20) harness.recipe.compat
passes it under that name and records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FIXES = {
    "data.format": "conversational",
    "tokenizer.pad_token": "unk_token",
    "training.packing_strategy": "wrapped",
    "training.bf16": "auto",
}
NO_FIXES = {
    "data.format": "instruction",
    "tokenizer.pad_token": "as_shipped",
    "training.packing_strategy": None,
    "training.bf16": None,
}


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    # The regressions this variant works around (their failures cannot show on it).
    works_around: tuple[str, ...] = ()


VARIANTS = {
    "2024": Variant(
        "2024", "as first published (2024): prompt/completion strings, Phi-3's PAD == EOS, packing "
        "strategy and bf16 left to the library", dict(NO_FIXES)),
    "intermediate": Variant(
        "intermediate", "conversational messages, still PAD == EOS, packing strategy and bf16 left to the library",
        dict(NO_FIXES, **{"data.format": "conversational"}),
        works_around=("instruction data not templated",)),
    "2025-10": Variant(
        "2025-10", "as republished in October 2025, today's default: conversational, pad = unk, "
        "packing_strategy='wrapped' and bf16 passed explicitly", dict(FIXES),
        works_around=("instruction data not templated", "EOS masked when PAD == EOS",
                      "packing default changed, bf16 default True")),
}
DEFAULT = "2025-10"


class UnknownVariant(ValueError):
    pass


def get(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise UnknownVariant(f"unknown recipe variant {name!r}; choose one of: {', '.join(VARIANTS)}") from None


def overrides(name: str | None) -> dict[str, Any]:
    """The config overrides of variant `name` (None: no variant, the profile's config as it is)."""
    return {} if name is None else dict(get(name).overrides)
