"""Recipe step 3: the Yoda sentences — sources, validation, a content-hash split, formatting.

The split depends on nothing but each row's `sentence`, so it survives a `datasets` upgrade,
a reordered file and a different shuffle seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

log = logging.getLogger("harness.data")

HUB_DATASET_ID = "dvgodoy/yoda_sentences"
COLUMNS = ("sentence", "translation", "translation_extra")
BUNDLED_NAME = "yoda_sentences.jsonl"
_LOADERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and the row."""


@dataclass(frozen=True)
class YodaSplit:
    train: list[dict]
    eval: list[dict]
    source: str

    def summary(self) -> dict:
        return {
            "source": self.source,
            "train_rows": len(self.train),
            "eval_rows": len(self.eval),
            "train_fingerprint": split_fingerprint(self.train),
            "eval_fingerprint": split_fingerprint(self.eval),
        }

    def content_digest(self) -> str:
        """sha256 of every row as loaded, every column: the data's part of a run's cache key.

        (The split fingerprints above cover the sentences only; a changed translation must also
        make a new run.)
        """
        canonical = json.dumps({"train": self.train, "eval": self.eval}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def bundled_path() -> Path:
    return Path(str(resources.files("harness.data_files").joinpath(BUNDLED_NAME)))


def load_rows(source: str = "hub") -> tuple[list[dict], str]:
    """Rows of the named source, validated, and a description of where they came from."""
    if source == "hub":
        rows = _load_from_hub()
        if rows is not None:
            return validate_rows(rows, HUB_DATASET_ID), HUB_DATASET_ID
        source = "bundled"
    if source == "bundled":
        path = bundled_path()
        return validate_rows(_read_with_datasets(path), str(path)), f"bundled:{path.name}"
    path = Path(source)
    if not path.exists():
        raise DataError(f"data source {source!r}: no such file (expected 'hub', 'bundled' or a path)")
    return validate_rows(_read_with_datasets(path), str(path)), str(path)


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


def validate_rows(rows: list[dict], origin: str) -> list[dict]:
    """Every row complete and unique, or a DataError naming the file and the 1-based row."""
    if not rows:
        raise DataError(f"{origin}: no rows")
    seen: dict[str, int] = {}
    clean = []
    for number, row in enumerate(rows, start=1):
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise DataError(f"{origin}: row {number}: missing column(s) {missing}")
        for column in COLUMNS:
            value = row[column]
            if value is None:  # `datasets` fills a key absent from one JSON row with null
                raise DataError(f"{origin}: row {number}: column {column!r} is missing or null")
            if not isinstance(value, str):
                raise DataError(f"{origin}: row {number}: column {column!r} is {type(value).__name__}, not text")
            if not value.strip():
                raise DataError(f"{origin}: row {number}: column {column!r} is empty")
        key = normalise(row["sentence"])
        if key in seen:
            raise DataError(f"{origin}: row {number}: duplicate sentence (same as row {seen[key]}): {row['sentence']!r}")
        seen[key] = number
        clean.append({c: row[c] for c in COLUMNS})
    return clean


def normalise(sentence: str) -> str:
    return " ".join(sentence.split()).casefold()


def is_eval_row(sentence: str, eval_fraction: float) -> bool:
    digest = hashlib.sha256(normalise(sentence).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction


def split_rows(rows: list[dict], eval_fraction: float, source: str = "") -> YodaSplit:
    """Train/eval split decided by each sentence's hash; both halves sorted by that hash too."""
    ordered = sorted(rows, key=lambda row: hashlib.sha256(normalise(row["sentence"]).encode()).hexdigest())
    eval_rows = [row for row in ordered if is_eval_row(row["sentence"], eval_fraction)]
    train_rows = [row for row in ordered if not is_eval_row(row["sentence"], eval_fraction)]
    return YodaSplit(train=train_rows, eval=eval_rows, source=source)


def split_fingerprint(rows: list[dict]) -> str:
    digest = hashlib.sha256()
    for sentence in sorted(normalise(row["sentence"]) for row in rows):
        digest.update(sentence.encode() + b"\n")
    return digest.hexdigest()[:16]


def to_conversation(row: dict, source_column: str = "sentence", target_column: str = "translation_extra") -> dict:
    """The recipe's conversational format."""
    return {
        "messages": [
            {"role": "user", "content": row[source_column]},
            {"role": "assistant", "content": row[target_column]},
        ]
    }


def to_prompt_completion(row: dict, source_column: str = "sentence", target_column: str = "translation_extra") -> dict:
    """trl's conversational prompt/completion form (used with completion-only loss)."""
    return {
        "prompt": [{"role": "user", "content": row[source_column]}],
        "completion": [{"role": "assistant", "content": row[target_column]}],
    }


def to_instruction(row: dict, source_column: str = "sentence", target_column: str = "translation_extra") -> dict:
    """Prompt/completion *strings*: the recipe's data as first published (2024). trl <= 0.14 found
    these columns and applied the chat template itself; trl 0.15 stopped templating them."""
    return {"prompt": row[source_column], "completion": row[target_column]}


def from_conversation(example: dict) -> tuple[str, str]:
    if isinstance(example.get("prompt"), str):
        return example["prompt"], example["completion"]
    messages = example["messages"] if "messages" in example else example["prompt"] + example["completion"]
    return messages[0]["content"], messages[1]["content"]


def format_rows(rows: list[dict], fmt: str, source_column: str, target_column: str) -> list[dict]:
    formatter = FORMATS.get(fmt)
    if formatter is None:
        raise ValueError(f"unknown data format {fmt!r} (use {', '.join(repr(name) for name in FORMATS)})")
    return [formatter(row, source_column, target_column) for row in rows]


FORMATS = {"conversational": to_conversation, "prompt_completion": to_prompt_completion,
           "instruction": to_instruction}


def load_split(source: str = "hub", eval_fraction: float = 0.1) -> YodaSplit:
    rows, origin = load_rows(source)
    return split_rows(rows, eval_fraction, origin)
