"""The version matrix: one row per library version set (its own page, and a section of a run's page)."""

from __future__ import annotations

# Package columns shown first in the matrix (others follow by name).
MATRIX_PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate")
MATRIX_METRICS = ("bleu", "base_bleu", "chrf", "stop_rate", "non_empty_stop_rate", "footprint_adapted_mb",
                  "trainable_parameters", "global_step", "loss_first", "loss_last", "train_loss")


def matrix_context(rows: list[dict] | None) -> dict:
    """The columns any row has (packages, suites, metrics), how many sets ended in each status, and the rows."""
    rows = list(rows or [])
    return {
        "packages": _ordered(_keys_of(rows, "packages"), MATRIX_PACKAGES),
        "suites": sorted(_keys_of(rows, "suites")),
        "metrics": _ordered(_keys_of(rows, "metrics"), MATRIX_METRICS),
        "counts": _status_counts(rows),
        "rows": [_matrix_row(row) for row in rows],
        "ran_on": ran_on(rows),
    }


def ran_on(rows: list[dict]) -> str | None:
    """Which device each set's run was made on (what selects its numbers: harness.env.describe_device),
    one line; None when no row has a run."""
    sets_by_device: dict[str, list[str]] = {}
    for row in rows:
        if row.get("device"):
            sets_by_device.setdefault(row["device"], []).append(row["version_set"])
    if len(sets_by_device) <= 1:
        return next(iter(sets_by_device), None)
    return "; ".join(f"{device} ({', '.join(dict.fromkeys(sets))})" for device, sets in sets_by_device.items())


def _keys_of(rows: list[dict], field: str) -> set[str]:
    return {key for row in rows for key in (row.get(field) or {})}


def _ordered(present: set[str], first: tuple[str, ...]) -> list[str]:
    """The columns named in `first` that are present, in that order, then the others by name."""
    return [name for name in first if name in present] + sorted(present - set(first))


def _status_counts(rows: list[dict]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("status", "?")] = counts.get(row.get("status", "?"), 0) + 1
    return sorted(counts.items())


def _matrix_row(row: dict) -> dict:
    return {
        "version_set": row.get("version_set"),
        "status": row.get("status"),
        "reason": row.get("reason"),
        "packages": row.get("packages") or {},
        "suites": row.get("suites") or {},
        "metrics": row.get("metrics") or {},
    }
