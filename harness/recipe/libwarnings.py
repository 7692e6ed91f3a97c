"""Early warning: every deprecation and future warning the libraries emit during a run.

A library usually announces a break a release or two before it makes it (`max_seq_length` is
deprecated ... will be removed). The recipe's run records each such announcement instead of
letting a warnings filter throw it away: which library (and release), which message, which recipe
setting it names, and how often. The run's record keeps them under `library_warnings`; the
terminal summary lists them, and a warning the baseline run did not see is a change
(`new_warnings`).

Two channels carry them: Python's `warnings` (DeprecationWarning, PendingDeprecationWarning,
FutureWarning, and UserWarnings that speak of deprecation) and the libraries' loggers
(transformers' `logger.warning_once("... is deprecated ...")`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Iterator

LIBRARIES = ("transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "huggingface_hub",
             "safetensors", "tokenizers", "torch")
DEPRECATION_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
# Wording of a deprecation in a UserWarning or a log line.
ANNOUNCES_A_BREAK = re.compile(r"deprecat|will be removed|is removed|no longer (be )?supported|will change|"
                               r"in a future (version|release)|will default to", re.IGNORECASE)
_DISTRIBUTION = {"huggingface_hub": "huggingface-hub"}


@dataclass(frozen=True, kw_only=True)
class LibraryWarning:
    """One warning as the run records it (run.json's `library_warnings`; baseline entries and
    session results hold the same JSON, `as_dict` / `from_dict`)."""

    library: str  # "trl 0.16.0"
    category: str  # the warning class, or "log:warning" for a logger's line
    message: str  # whitespace folded, at most 400 characters
    settings: list[str]  # the recipe settings it names
    where: str  # file:line, or the logger
    count: int

    @classmethod
    def from_dict(cls, entry: dict) -> "LibraryWarning":
        return cls(**entry)

    def as_dict(self) -> dict:
        return asdict(self)


def library_of(path_or_logger: str) -> str | None:
    """'.../site-packages/trl/trainer/sft_trainer.py' or 'trl.trainer' -> 'trl' (None: not a library)."""
    match = re.search(r"(?:site-packages|dist-packages)[/\\]([A-Za-z0-9_]+)", path_or_logger)
    root = match.group(1) if match else path_or_logger.split(".")[0]
    return root if root in LIBRARIES else None


def _release(name: str) -> str:
    try:
        return f"{name} {metadata.version(_DISTRIBUTION.get(name, name))}"
    except metadata.PackageNotFoundError:
        return name


def recipe_settings(config) -> list[str]:
    """The recipe's setting names ("training.max_length") and their bare names, for matching."""
    if config is None:
        return []
    names = []
    for section, values in config.to_dict().items():
        names += [f"{section}.{key}" for key in values]
    return names


def settings_named(message: str, settings: list[str]) -> list[str]:
    """The recipe settings a warning's text names (by the bare field name, or trl's old name)."""
    from harness.recipe.compat import SFT_RENAMES

    found = []
    for dotted in settings:
        bare = dotted.split(".", 1)[1]
        names = {bare, SFT_RENAMES.get(bare, bare)}
        if bare == "bf16":
            names.add("bf16")
        if any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) for name in names):
            found.append(dotted)
    return found


class _Collector:
    def __init__(self, config):
        self.settings = recipe_settings(config)
        self.entries: dict[tuple, dict] = {}

    def add(self, library: str, category: str, message: str, where: str) -> None:
        text = " ".join(message.split())[:400]
        key = (library, category, text)
        if key in self.entries:
            self.entries[key]["count"] += 1
            return
        self.entries[key] = {"library": _release(library), "category": category, "message": text,
                             "settings": settings_named(text, self.settings), "where": where, "count": 1}


class _LogHandler(logging.Handler):
    def __init__(self, collector: _Collector):
        super().__init__(logging.WARNING)
        self.collector = collector

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break the run
            return
        library = library_of(record.name)
        if library and ANNOUNCES_A_BREAK.search(message):
            self.collector.add(library, "log:" + record.levelname.lower(), message, record.name)


@contextlib.contextmanager
def recording(config=None) -> Iterator[list[LibraryWarning]]:
    """Record the libraries' deprecation warnings inside the block; the list fills on exit.

    Other warnings are re-issued unchanged after the block, so pytest still shows them.
    """
    collector = _Collector(config)
    result: list[LibraryWarning] = []
    handler = _LogHandler(collector)
    loggers = [logging.getLogger(name) for name in LIBRARIES]
    for logger in loggers:
        logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield result
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
    others = []
    for warning in caught:
        library = library_of(warning.filename or "")
        message = str(warning.message)
        deprecation = issubclass(warning.category, DEPRECATION_CATEGORIES) or ANNOUNCES_A_BREAK.search(message)
        if library and deprecation:
            collector.add(library, warning.category.__name__, message, f"{warning.filename}:{warning.lineno}")
        else:
            others.append(warning)
    result.extend(LibraryWarning.from_dict(entry) for entry in collector.entries.values())
    for warning in others:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def signature(entry: LibraryWarning) -> tuple[str, str, str]:
    """What makes two recorded warnings the same one: library (without release), kind, message
    with numbers blanked (line numbers and versions inside messages change between releases)."""
    library = entry.library.split(" ")[0]
    return library, entry.category, re.sub(r"\d+(\.\d+)*", "N", entry.message)


def new_warnings(current: list[LibraryWarning], baseline: list[LibraryWarning]) -> list[LibraryWarning]:
    """The warnings of `current` that the baseline run did not emit."""
    known = {signature(entry) for entry in baseline}
    return [entry for entry in current if signature(entry) not in known]


def describe(entry: LibraryWarning) -> str:
    settings = f" [recipe setting: {', '.join(entry.settings)}]" if entry.settings else ""
    count = f" (x{entry.count})" if entry.count > 1 else ""
    return f"{entry.library} {entry.category}: {entry.message}{settings}{count}"
