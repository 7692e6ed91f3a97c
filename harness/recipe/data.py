"""Recipe step 3: the Yoda sentences — sources, validation, a content-hash split, formatting.

Which columns are read is `Columns` (from `DataSettings.source_column` / `target_column`): the
one place validation, the split, the training examples, scoring and the readers of a run's
scores take column names from. The split depends on nothing but each row's source text, so it
survives a `datasets` upgrade, a reordered file and a different shuffle seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness.recipe.config import DataSettings

log = logging.getLogger("harness.recipe.data")

HUB_DATASET_ID = "dvgodoy/yoda_sentences"
# The bundled (and hub) data's second reference: the Yoda word order without the interjection
# `translation_extra` ends with. Optional: scored when the data has it, left out when not.
SECONDARY_REFERENCE = "translation"
# The recipe's columns: DataSettings' defaults.
DEFAULT_SOURCE, DEFAULT_TARGET = DataSettings.source_column, DataSettings.target_column
BUNDLED_NAME = "yoda_sentences.jsonl"
_LOADERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and the row."""


@dataclass(frozen=True)
class Columns:
    """The columns the recipe reads, and the names its scores are recorded under.

    `source` is the prompt (and what the split and the duplicate check hash), `target` what the
    model learns to answer and the reference it is scored against (`vs_<target>` in a run's
    metrics); `secondary`, when not None, a second reference scored as `vs_<secondary>`.
    """

    source: str = DEFAULT_SOURCE
    target: str = DEFAULT_TARGET
    secondary: str | None = SECONDARY_REFERENCE

    @classmethod
    def named(cls, source: str, target: str) -> "Columns":
        """Source and target columns, with the secondary reference unless it is one of them."""
        return cls(source, target, SECONDARY_REFERENCE if SECONDARY_REFERENCE not in (source, target) else None)

    @classmethod
    def of(cls, settings: DataSettings) -> "Columns":
        """From `DataSettings` (`source_column`, `target_column`)."""
        return cls.named(settings.source_column, settings.target_column)

    @property
    def required(self) -> tuple[str, ...]:
        return (self.source, self.target)

    @property
    def references(self) -> tuple[str, ...]:
        """The reference columns scored, the target first."""
        return (self.target,) if self.secondary is None else (self.target, self.secondary)

    @property
    def target_key(self) -> str:
        return score_key(self.target)

    @property
    def secondary_key(self) -> str | None:
        return None if self.secondary is None else score_key(self.secondary)

    def found_in(self, rows: list[dict]) -> "Columns":
        """These columns as `rows` have them: without the secondary reference when no row has a value in it."""
        if self.secondary is None or any(row.get(self.secondary) is not None for row in rows):
            return self
        return dataclasses.replace(self, secondary=None)

    def reference_record(self, row: dict) -> dict:
        """What a generation is stored with: its source and references (no `reference_plain` without one)."""
        record = {"source": row[self.source], "reference": row[self.target]}
        if self.secondary is not None and self.secondary in row:
            record["reference_plain"] = row[self.secondary]
        return record


DEFAULT_COLUMNS = Columns()


def score_key(column: str) -> str:
    """The key a run's metrics hold the corpus scores against reference `column` under."""
    return f"vs_{column}"


@dataclass(frozen=True)
class YodaSplit:
    train: list[dict]
    eval: list[dict]
    source: str
    columns: Columns = DEFAULT_COLUMNS  # as the rows have them (no secondary reference where they lack it)

    def summary(self) -> dict:
        return {
            "source": self.source,
            "train_rows": len(self.train),
            "eval_rows": len(self.eval),
            "train_fingerprint": split_fingerprint(self.train, self.columns.source),
            "eval_fingerprint": split_fingerprint(self.eval, self.columns.source),
        }

    def content_digest(self) -> str:
        """sha256 of every row as loaded, every column: the data's part of a run's cache key.

        (The split fingerprints above cover the sentences only; a changed translation must also
        make a new run.)
        """
        canonical = json.dumps({"train": self.train, "eval": self.eval}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def bundled_path() -> Path:
    return Path(str(resources.files("harness.recipe.data_files").joinpath(BUNDLED_NAME)))


def load_rows(source: str = "hub", columns: Columns | None = None) -> tuple[list[dict], str]:
    """Rows of the named source, validated for `columns` (default: the bundled data's), and where they came from."""
    columns = columns or DEFAULT_COLUMNS
    if source == "hub":
        rows = _load_from_hub()
        if rows is not None:
            return validate_rows(rows, HUB_DATASET_ID, columns), HUB_DATASET_ID
        source = "bundled"
    if source == "bundled":
        path = bundled_path()
        return validate_rows(_read_with_datasets(path), str(path), columns), f"bundled:{path.name}"
    path = Path(source)
    if not path.exists():
        raise DataError(f"data source {source!r}: no such file (expected 'hub', 'bundled' or a path)")
    return validate_rows(_read_with_datasets(path), str(path), columns), str(path)


def _load_from_hub() -> list[dict] | None:
    """The hub copy (or its locally cached copy), or None after one log line saying why not.

    Offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) is respected: only the local cache is
    read. When the hub does not answer one quick probe, the cache is read the same way, so an
    unreachable hub costs seconds instead of the hub client's minute of retries.
    """
    from datasets import config as datasets_config
    from datasets import load_dataset

    offline_by_choice = bool(datasets_config.HF_HUB_OFFLINE)
    unreachable = None if offline_by_choice else hub_unreachable()
    try:
        with _offline(offline_by_choice or unreachable is not None):
            return [dict(row) for row in load_dataset(HUB_DATASET_ID, split="train")]
    except Exception as error:  # no network and no cache, or any hub failure: the bundled copy
        if offline_by_choice:
            why = "offline mode (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) and no cached copy"
        elif unreachable is not None:
            why = f"the hub is unreachable ({unreachable}) and there is no cached copy"
        else:
            why = _first_line(error)
        log.warning("%s: %s; using the bundled Yoda data set", HUB_DATASET_ID, why)
        return None


def hub_unreachable(timeout: float = 5.0) -> str | None:
    """None when the hub endpoint answers at all (any HTTP status), else why not, in one line."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return None
    except Exception as error:  # refused, DNS, timeout, proxy: all mean "not reachable from here"
        return _first_line(error)
    return None


@contextlib.contextmanager
def _offline(enabled: bool):
    """Make `datasets` and the hub client read only the local cache (their flags are read at import)."""
    from datasets import config as datasets_config
    from huggingface_hub import constants

    saved = datasets_config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    if enabled:
        datasets_config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets_config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


def _read_with_datasets(path: Path) -> list[dict]:
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r} (use .jsonl, .csv or .parquet)")
    from datasets import load_dataset

    try:
        dataset = load_dataset(loader, data_files=str(path), split="train")
    except Exception as error:
        raise DataError(f"{path}: cannot be read as {loader}: {error}") from error
    return [dict(row) for row in dataset]


def validate_rows(rows: list[dict], origin: str, columns: Columns | None = None) -> list[dict]:
    """Every row complete and unique, or a DataError naming the file, the 1-based row and the column.

    The source and target columns are required. The secondary reference is optional for the file
    (no row has it: it is left out) but not for a row (some rows have it: every row must). The
    rows come back with only the columns read, so nothing else reaches the run's data digest.
    """
    if not rows:
        raise DataError(f"{origin}: no rows")
    columns = (columns or DEFAULT_COLUMNS).found_in(rows)
    used = columns.required + tuple(c for c in columns.references if c not in columns.required)
    seen: dict[str, int] = {}
    clean = []
    for number, row in enumerate(rows, start=1):
        missing = [c for c in used if c not in row]
        if missing:
            has = ", ".join(repr(c) for c in row) or "no columns"
            raise DataError(f"{origin}: row {number}: missing column(s) {missing} (the row has {has}; the "
                            "columns read are set by data.source_column and data.target_column)")
        for column in used:
            value = row[column]
            if value is None:  # `datasets` fills a key absent from one JSON row with null
                raise DataError(f"{origin}: row {number}: column {column!r} is missing or null")
            if not isinstance(value, str):
                raise DataError(f"{origin}: row {number}: column {column!r} is {type(value).__name__}, not text")
            if not value.strip():
                raise DataError(f"{origin}: row {number}: column {column!r} is empty")
        key = normalise(row[columns.source])
        if key in seen:
            raise DataError(f"{origin}: row {number}: duplicate {columns.source!r} (same as row {seen[key]}): "
                            f"{row[columns.source]!r}")
        seen[key] = number
        clean.append({c: row[c] for c in used})
    return clean


def normalise(sentence: str) -> str:
    return " ".join(sentence.split()).casefold()


def is_eval_row(sentence: str, eval_fraction: float) -> bool:
    digest = hashlib.sha256(normalise(sentence).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction


def split_rows(rows: list[dict], eval_fraction: float, source: str = "", columns: Columns | None = None) -> YodaSplit:
    """Train/eval split decided by each row's source text's hash; both halves sorted by that hash too."""
    columns = (columns or DEFAULT_COLUMNS).found_in(rows)
    text = columns.source
    ordered = sorted(rows, key=lambda row: hashlib.sha256(normalise(row[text]).encode()).hexdigest())
    eval_rows = [row for row in ordered if is_eval_row(row[text], eval_fraction)]
    train_rows = [row for row in ordered if not is_eval_row(row[text], eval_fraction)]
    return YodaSplit(train=train_rows, eval=eval_rows, source=source, columns=columns)


def split_fingerprint(rows: list[dict], column: str = DEFAULT_SOURCE) -> str:
    digest = hashlib.sha256()
    for sentence in sorted(normalise(row[column]) for row in rows):
        digest.update(sentence.encode() + b"\n")
    return digest.hexdigest()[:16]


def to_conversation(row: dict, columns: Columns = DEFAULT_COLUMNS) -> dict:
    """The recipe's conversational format."""
    return {
        "messages": [
            {"role": "user", "content": row[columns.source]},
            {"role": "assistant", "content": row[columns.target]},
        ]
    }


def to_prompt_completion(row: dict, columns: Columns = DEFAULT_COLUMNS) -> dict:
    """trl's conversational prompt/completion form (used with completion-only loss)."""
    return {
        "prompt": [{"role": "user", "content": row[columns.source]}],
        "completion": [{"role": "assistant", "content": row[columns.target]}],
    }


def to_instruction(row: dict, columns: Columns = DEFAULT_COLUMNS) -> dict:
    """Prompt/completion *strings*: the recipe's data as first published (2024). trl <= 0.14 found
    these columns and applied the chat template itself; trl 0.15 stopped templating them."""
    return {"prompt": row[columns.source], "completion": row[columns.target]}


def from_conversation(example: dict) -> tuple[str, str]:
    if isinstance(example.get("prompt"), str):
        return example["prompt"], example["completion"]
    messages = example["messages"] if "messages" in example else example["prompt"] + example["completion"]
    return messages[0]["content"], messages[1]["content"]


def format_rows(rows: list[dict], fmt: str, columns: Columns) -> list[dict]:
    formatter = FORMATS.get(fmt)
    if formatter is None:
        raise ValueError(f"unknown data format {fmt!r} (use {', '.join(repr(name) for name in FORMATS)})")
    return [formatter(row, columns) for row in rows]


FORMATS = {"conversational": to_conversation, "prompt_completion": to_prompt_completion,
           "instruction": to_instruction}


def load_split(source: str = "hub", eval_fraction: float = 0.1, columns: Columns | None = None) -> YodaSplit:
    rows, origin = load_rows(source, columns)
    return split_rows(rows, eval_fraction, origin, columns)
