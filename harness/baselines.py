"""Stored baselines: one JSON file per profile, entries keyed by library-version set and device.

    {
      "schema": 1,
      "profile": "tiny",
      "thresholds": {...},          # policy, written by people: floors, minimum gains, bands
      "entries": [                  # measurements, written only by `--update-baselines`
        {"version_set": "...", "device": "cpu", "recorded": "...", "packages": {...},
         "run_key": "...", "metrics": {"bleu": {"value": 12.3, "tolerance": {"abs": 1.0}}, ...}}
      ]
    }

A file that does not match this shape is an error naming the file and the field: a corrupt or
hand-mangled baseline never passes silently.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import artifacts, env

SCHEMA = 1
MB = 1_000_000

# How far a metric may move from its baseline before a check fails (policy, per metric).
# Structural figures must be exact; learned ones move with library versions and hardware.
DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "footprint_loaded_mb": {"abs": 0.0},
    "footprint_adapted_mb": {"abs": 0.0},
    "trainable_parameters": {"abs": 0.0},
    "total_parameters": {"abs": 0.0},
    "global_step": {"abs": 0.0},
    "packed_rows": {"abs": 0.0},
    "adapter_data_bytes": {"abs": 0.0},
    "adapter_dtype": {"abs": 0.0},
    "loss_first": {"rel": 0.10},
    "loss_last": {"rel": 0.25},
    "train_loss": {"rel": 0.15},
    "bleu": {"abs": 3.0},
    "bleu_plain": {"abs": 3.0},
    "chrf": {"abs": 4.0},
    "ter": {"abs": 8.0},
    "base_bleu": {"abs": 3.0},
    "stop_rate": {"abs": 0.10},
    "non_empty_stop_rate": {"abs": 0.10},
    "mean_new_tokens": {"rel": 0.25},
    "mean_words": {"rel": 0.25},
    "peak_gpu_allocated_mb": {"rel": 0.10},
    "template_rendered": {"abs": 0.0},
}


class BaselineError(ValueError):
    """A baseline file that cannot be trusted; the message names the file and the field."""


@dataclass(frozen=True)
class Deviation:
    name: str
    baseline: Any
    current: Any
    tolerance: dict

    def describe(self) -> str:
        if isinstance(self.current, (int, float)) and isinstance(self.baseline, (int, float)):
            delta = self.current - self.baseline
            return (f"{self.name}: {self.current:g} vs baseline {self.baseline:g} "
                    f"(Δ {delta:+g}, tolerance {self.tolerance})")
        return f"{self.name}: changed from the baseline"


# ------------------------------------------------------------------ metrics of a run
def run_metrics(manifest: dict, template: dict | None = None) -> dict[str, Any]:
    """Every metric the suites check, flattened from a finished run's manifest."""
    structure, training, scores = manifest["structure"], manifest["training"], manifest["metrics"]
    losses = [point["loss"] for point in training["loss_history"]]
    values: dict[str, Any] = {
        "footprint_loaded_mb": round(structure["footprint_loaded_bytes"] / MB, 6),
        "footprint_adapted_mb": round(structure["footprint_adapted_bytes"] / MB, 6),
        "trainable_parameters": structure["trainable_parameters"],
        "total_parameters": structure["total_parameters"],
        "global_step": training["global_step"],
        "packed_rows": training["packed_rows"],
        "adapter_data_bytes": manifest["adapter"]["safetensors_data_bytes"],
        "adapter_dtype": ",".join(manifest["adapter"].get("dtypes", [])) or None,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "train_loss": training["train_loss"],
        "bleu": scores["tuned"]["vs_translation_extra"]["bleu"],
        "bleu_plain": scores["tuned"]["vs_translation"]["bleu"],
        "chrf": scores["tuned"]["vs_translation_extra"]["chrf"],
        "ter": scores["tuned"]["vs_translation_extra"]["ter"],
        "base_bleu": scores["base"]["vs_translation_extra"]["bleu"],
        "stop_rate": scores["tuned"]["stop_rate"],
        "non_empty_stop_rate": scores["tuned"]["non_empty_stop_rate"],
        "mean_new_tokens": scores["tuned"]["mean_new_tokens"],
        "mean_words": scores["tuned"]["mean_words"],
        "peak_gpu_allocated_mb": round(training["peak_gpu_allocated_bytes"] / MB, 3)
        if training.get("peak_gpu_allocated_bytes") else None,
    }
    if template is not None:
        values["template_rendered"] = template["rendered"]
    if manifest.get("profile_kind") == "structural":
        for name in ("bleu", "bleu_plain", "chrf", "ter", "base_bleu", "stop_rate", "non_empty_stop_rate",
                     "mean_new_tokens", "mean_words", "loss_first", "loss_last", "train_loss"):
            values.pop(name, None)  # random weights: these say nothing
    return {name: value for name, value in values.items() if value is not None}


# ------------------------------------------------------------------ load / validate
def empty_file(profile: str) -> dict:
    return {"schema": SCHEMA, "profile": profile, "thresholds": {}, "entries": []}


def load(path: Path, profile: str) -> dict:
    """The validated baseline file for `profile` (an empty one if the file does not exist)."""
    if not path.exists():
        return empty_file(profile)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BaselineError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    validate(raw, path, profile)
    return raw


def validate(raw: Any, path: Path, profile: str) -> None:
    def fail(field: str, problem: str):
        raise BaselineError(f"{path}: {field}: {problem}")

    if not isinstance(raw, dict):
        fail("(top level)", "expected an object")
    for key, kind in (("schema", int), ("profile", str), ("thresholds", dict), ("entries", list)):
        if key not in raw:
            fail(key, "missing")
        if not isinstance(raw[key], kind):
            fail(key, f"expected {kind.__name__}, got {type(raw[key]).__name__}")
    if raw["schema"] != SCHEMA:
        fail("schema", f"version {raw['schema']} is not supported (expected {SCHEMA})")
    if raw["profile"] != profile:
        fail("profile", f"is {raw['profile']!r}, but this file is for profile {profile!r}")
    for name, value in raw["thresholds"].items():
        if not _is_number(value):
            fail(f"thresholds.{name}", f"expected a number, got {value!r}")
    for index, entry in enumerate(raw["entries"]):
        where = f"entries[{index}]"
        if not isinstance(entry, dict):
            fail(where, "expected an object")
        for key, kind in (("version_set", str), ("device", str), ("recorded", str), ("packages", dict),
                          ("metrics", dict)):
            if not isinstance(entry.get(key), kind):
                fail(f"{where}.{key}", f"expected {kind.__name__}, got {entry.get(key)!r}")
        for name, metric in entry["metrics"].items():
            field = f"{where}.metrics.{name}"
            if not isinstance(metric, dict) or "value" not in metric or "tolerance" not in metric:
                fail(field, "expected an object with 'value' and 'tolerance'")
            value = metric["value"]
            if not (_is_number(value) or isinstance(value, str)):
                fail(f"{field}.value", f"expected a number or text, got {value!r}")
            tolerance = metric["tolerance"]
            if not isinstance(tolerance, dict) or not tolerance or any(
                key not in ("abs", "rel") or not _is_number(v) or v < 0 for key, v in tolerance.items()
            ):
                fail(f"{field}.tolerance", f"expected {{'abs': n}} and/or {{'rel': n}} with n >= 0, got {tolerance!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------ compare
def within(current: Any, baseline: Any, tolerance: dict) -> bool:
    """True when `current` is within `tolerance` of `baseline` (abs and rel combined: either suffices)."""
    if isinstance(baseline, str) or isinstance(current, str):
        return current == baseline
    allowed = max(tolerance.get("abs", 0.0), tolerance.get("rel", 0.0) * abs(baseline))
    # Slack for float rounding only: one part in 1e12 of the value.
    return abs(current - baseline) <= allowed + 1e-12 * max(1.0, abs(baseline))


def select_entry(baseline: dict, environment: dict) -> tuple[dict | None, str]:
    """The entry to compare with: same version set and device, else the newest of the device."""
    device = env.device_kind(environment)
    version_set = env.version_set_id(environment)
    same_device = [e for e in baseline["entries"] if e["device"] == device]
    exact = [e for e in same_device if e["version_set"] == version_set]
    if exact:
        return exact[0], "same library versions and device"
    if same_device:
        newest = max(same_device, key=lambda e: e["recorded"])
        return newest, f"newest entry for {device} (library versions differ)"
    return None, f"no baseline entry for device {device!r}"


@dataclass
class Comparison:
    path: Path
    profile: str
    thresholds: dict
    entry: dict | None
    reason: str
    changed: list[str]

    def value(self, name: str) -> Any:
        if self.entry is None or name not in self.entry["metrics"]:
            return None
        return self.entry["metrics"][name]["value"]

    def check(self, name: str, current: Any) -> Deviation | None:
        """None when `current` is within tolerance of the baseline, else the deviation."""
        metric = self.entry["metrics"][name]
        if within(current, metric["value"], metric["tolerance"]):
            return None
        return Deviation(name, metric["value"], current, metric["tolerance"])

    def context(self) -> str:
        libs = "; ".join(self.changed) if self.changed else "no library changed"
        return f"baseline {self.path.name} ({self.reason}; {libs})"


def compare(path: Path, profile: str, environment: dict) -> Comparison:
    baseline = load(path, profile)
    entry, reason = select_entry(baseline, environment)
    changed = env.changed_packages(entry["packages"], environment["packages"]) if entry else []
    return Comparison(path, profile, baseline["thresholds"], entry, reason, changed)


# ------------------------------------------------------------------ update
def entry_from_run(manifest: dict, template: dict | None, provenance: dict | None = None) -> dict:
    environment = manifest["environment"]
    return {
        # Which harness recorded it (commit, dirty tree), and whether invariants failed and it was forced.
        "provenance": provenance or {},
        "version_set": env.version_set_id(environment),
        "device": env.device_kind(environment),
        "recorded": manifest["created"],
        "packages": environment["packages"],
        "python": environment["python"],
        "run_key": manifest["key"],
        # The curve itself, so a report can draw this run's loss against the baseline's.
        "loss_history": manifest["training"]["loss_history"],
        "metrics": {
            name: {"value": value, "tolerance": dict(DEFAULT_TOLERANCES.get(name, {"rel": 0.1}))}
            for name, value in sorted(run_metrics(manifest, template).items())
        },
    }


@contextlib.contextmanager
def file_lock(path: Path):
    """One writer of a baseline file at a time (processes of one machine), without a lock file beside it."""
    import fcntl
    import hashlib
    import tempfile

    name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"yoda-harness-baseline-{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update(path: Path, profile: str, manifest: dict, template: dict | None,
           provenance: dict | None = None) -> list[str]:
    """Record the run as the entry for its version set and device; return the old → new lines."""
    baseline = load(path, profile)
    new_entry = entry_from_run(manifest, template, provenance)
    old_entry = next((e for e in baseline["entries"]
                      if e["version_set"] == new_entry["version_set"] and e["device"] == new_entry["device"]), None)
    # Keep tolerances someone tuned on the entry being replaced.
    if old_entry:
        for name, metric in new_entry["metrics"].items():
            if name in old_entry["metrics"]:
                metric["tolerance"] = old_entry["metrics"][name]["tolerance"]
    baseline["entries"] = [e for e in baseline["entries"] if e is not old_entry] + [new_entry]
    baseline["entries"].sort(key=lambda e: (e["device"], e["recorded"]))
    artifacts.write_json(path, baseline)
    return diff_entries(old_entry, new_entry)


def diff_entries(old: dict | None, new: dict) -> list[str]:
    if old is None:
        return [f"new entry for {new['device']} / version set {new['version_set']}"]
    lines = []
    for name in sorted(set(old["metrics"]) | set(new["metrics"])):
        before = old["metrics"].get(name, {}).get("value")
        after = new["metrics"].get(name, {}).get("value")
        if before != after:
            if isinstance(before, str) or isinstance(after, str):
                lines.append(f"{name}: text changed")
            else:
                lines.append(f"{name}: {before} → {after}")
    return lines or ["no metric changed"]
