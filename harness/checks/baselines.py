"""Stored baselines: one JSON file per profile, entries keyed by library-version set and device
(the device's kind and, past one, the process count: `env.device_kind`).

    {
      "schema": 2,
      "profile": "tiny",
      "entries": [                  # measurements, written only by `--yoda-update-baselines`
        {"version_set": "...", "device": "cpu", "recorded": "...", "packages": {...},
         "run_key": "...", "runs": [{"run_key": "...", "seed": 0}, ...],
         "inputs": {"config_digest": "...", "config": {...}, "data": {...}, "global_step": 348,
                    "model": "tiny-phi3"},
         "metrics": {
           "bleu": {"value": 1.83, "direction": "higher", "spread": 0.11, "samples": [...],
                    "k": 3, "rel_floor": 0.1, "band": {"low": 1.5, "high": null}},
           "adapter_dtype": {"value": "BF16", "direction": "exact"}, ...}}
      ]
    }

Every metric `measure` reads from a run has a row in `POLICY` (direction, relative floor, k)
and is compared; the band written in the entry is what the comparison applies, so a reviewer
reads the tolerance in the file. Schema-1 files (absolute tolerances, no inputs) still load:
their entries are converted to the policy's bands around the recorded value, marked `legacy`.

A file that does not match this shape is an error naming the file and the field: a corrupt or
hand-mangled baseline never passes silently.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import env, files
from harness.recipe.config import RETIRED
from harness.recipe.record import RunRecord, to_json, tokens_value

SCHEMA = 2
LEGACY_SCHEMAS = (1,)

HIGHER, LOWER, TWO_SIDED, EXACT = "higher", "lower", "two-sided", "exact"
DIRECTIONS = (HIGHER, LOWER, TWO_SIDED, EXACT)
MODEL, RUN = "model", "run"
# The config sections a model-scope metric depends on (the rest is training, data, generation).
MODEL_SECTIONS = ("quantization", "lora")


@dataclass(frozen=True)
class Policy:
    """How one metric is compared: which way is worse, and how wide its band is.

    band half-width = max(k x measured spread, rel_floor x |value|, abs_floor), at most
    rel_cap x |value|. The floor keeps a band from collapsing to the few digits a single seeded
    run reproduces exactly; k x spread widens it where the seeds really disagree. `abs_floor`
    only for rates, whose grain is one evaluation row (a rate of 0 has no relative floor).
    `rel_cap` only for higher-is-better quality: whatever the seeds do, a drop of more than that
    share is a change (BLEU halved must fail), and the entry marks the metric `capped` so a
    reviewer sees that the seeds alone can move it that far.
    """

    direction: str
    rel_floor: float = 0.0
    k: float = 3.0
    abs_floor: float = 0.0
    rel_cap: float | None = None
    group: str = "structure"  # the marker that lets a profile skip it: structure | quality | learning
    unit: str = ""
    hint: str = ""  # the likely cause, for the failure message
    # What the metric depends on, so what a refusal covers: "model" (the model, its tokenizer,
    # quantization and LoRA config) or "run" (also training, data, generation).
    scope: str = "run"


# The largest drop of a higher-is-better quality metric that a band may allow, as a share.
QUALITY_CAP = 0.4

# The per-metric policy: one table. Structural figures must be equal; a seeded run on the same
# libraries and device reproduces learned figures closely, so their floors are a few per cent.
POLICY: dict[str, Policy] = {
    # structure: any difference is a change
    "footprint_loaded_mb": Policy(EXACT, unit=" MB", scope=MODEL),
    "footprint_adapted_mb": Policy(EXACT, unit=" MB", scope=MODEL),
    "trainable_parameters": Policy(EXACT, scope=MODEL),
    "total_parameters": Policy(EXACT, scope=MODEL),
    "global_step": Policy(EXACT),
    "packed_rows": Policy(EXACT),
    "adapter_data_bytes": Policy(EXACT, unit=" B", scope=MODEL),
    "adapter_dtype": Policy(EXACT, hint="e.g. trl 1.x casts QLoRA adapters to bf16 in SFTTrainer; peft's "
                                        "default keeps them fp32"),
    "template_rendered": Policy(EXACT, scope=MODEL,
                                hint="the chat template renders differently: a tokenizer or template change"),
    "tokens_as_read": Policy(EXACT, scope=MODEL, hint="the tokenizer ships other special tokens than it did"),
    "bleu_signature": Policy(EXACT, scope=MODEL),
    "chrf_signature": Policy(EXACT, scope=MODEL),
    "ter_signature": Policy(EXACT, scope=MODEL),
    # memory: only more is worse
    "peak_gpu_allocated_mb": Policy(LOWER, rel_floor=0.10, unit=" MB",
                                    hint="adapters or optimizer state in another dtype, or gradient checkpointing off"),
    # loss: a masking bug raises the first loss, a label bug can lower or raise the rest
    "loss_first": Policy(TWO_SIDED, rel_floor=0.05, group="learning",
                         hint="the loss before learning moved: which tokens are labelled changed (masking)"),
    "loss_last": Policy(TWO_SIDED, rel_floor=0.05, group="learning"),
    "train_loss": Policy(TWO_SIDED, rel_floor=0.05, group="learning"),
    # quality of the tuned model: only worse fails
    "bleu": Policy(HIGHER, rel_floor=0.10, rel_cap=QUALITY_CAP, group="quality"),
    "bleu_plain": Policy(HIGHER, rel_floor=0.10, rel_cap=QUALITY_CAP, group="quality"),
    "chrf": Policy(HIGHER, rel_floor=0.05, rel_cap=QUALITY_CAP, group="quality"),
    "ter": Policy(LOWER, rel_floor=0.05, group="quality"),
    "stop_rate": Policy(HIGHER, rel_floor=0.05, abs_floor=0.02, rel_cap=QUALITY_CAP, group="quality"),
    "non_empty_stop_rate": Policy(HIGHER, rel_floor=0.05, abs_floor=0.02, rel_cap=QUALITY_CAP, group="quality"),
    # length: running on and cutting short are both wrong
    "mean_new_tokens": Policy(TWO_SIDED, rel_floor=0.10, group="quality"),
    "mean_words": Policy(TWO_SIDED, rel_floor=0.10, group="quality"),
    # the base model does not train: its scores move only with generation, template or tokenizer
    "base_bleu": Policy(TWO_SIDED, rel_floor=0.05, group="quality"),
    "base_stop_rate": Policy(TWO_SIDED, rel_floor=0.05, abs_floor=0.02, group="quality"),
}
METRIC_NAMES = tuple(POLICY)


def scope_of(name: str) -> str:
    return POLICY[name].scope if name in POLICY else RUN

# Floats equal to this many parts in 1e12 are equal: JSON round trips and means of equal samples.
_SLACK = 1e-12

# The recipe inputs an entry was made with; a run that differs in one is refused, not compared.
CONFIG_IGNORED = ("training.seed",)  # the seed varies across a spread recording; the band covers it


class BaselineError(ValueError):
    """A baseline file that cannot be trusted; the message names the file and the field."""


# ------------------------------------------------------------------ metrics of a run
# What the prepared stage measures (everything before the first optimizer step): compared by
# `pytest suites -m structural` too.
PREPARED_METRICS = ("footprint_loaded_mb", "footprint_adapted_mb", "trainable_parameters", "total_parameters",
                    "template_rendered", "tokens_as_read")


def measure(record: RunRecord, template: dict | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """(every metric of POLICY this run has, {metric: why this run has none}): what the record
    measures (`record.measure`), as the policy reads it."""
    values, absent = record.measure(template)
    if record.trained and record.profile_kind == "structural":
        for name, policy in POLICY.items():
            if policy.group in ("quality", "learning"):
                values[name] = None
                absent[name] = f"profile {record.profile!r} has random weights: its {name} says nothing"
    present = {name: value for name, value in values.items() if value is not None}
    return present, {name: absent.get(name, record.unmeasured(name)) for name in POLICY if name not in present}


def run_metrics(record: RunRecord, template: dict | None = None) -> dict[str, Any]:
    """Every metric the comparison reads, from a finished run's record."""
    return measure(record, template)[0]


def run_inputs(record: RunRecord) -> dict:
    """What a comparison is only meaningful for: the same config, data, step count and model."""
    # A retired field (one the code never passed) is left out: a run recorded with it compares as one without.
    config = _without(record.config, CONFIG_IGNORED + tuple(RETIRED))
    data = record.data
    return {
        "config_digest": _digest(config),
        "config": config,
        "data": {"source": data.source, "train_fingerprint": data.train_fingerprint,
                 "eval_fingerprint": data.eval_fingerprint, "train_rows": data.train_rows, "eval_rows": data.eval_rows},
        "global_step": record.training.global_step if record.trained else None,
        "model": {"profile": record.profile, "model": record.model, "identity": record.model_identity},
    }


def _without(config: dict, dotted: tuple[str, ...]) -> dict:
    copy = json.loads(json.dumps(config))
    for path in dotted:
        section, _, key = path.partition(".")
        copy.get(section, {}).pop(key, None)
    return copy


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# ------------------------------------------------------------------ bands and the one decision
def _half_width(policy: Policy, value: float, spread: float | None) -> float:
    half = max(policy.k * (spread or 0.0), policy.rel_floor * abs(value), policy.abs_floor)
    return min(half, policy.rel_cap * abs(value)) if policy.rel_cap is not None else half


def capped(policy: Policy, value: float, spread: float | None) -> bool:
    """True when k x spread was wider than the cap allows: the seeds alone move it that far."""
    return policy.rel_cap is not None and policy.k * (spread or 0.0) > policy.rel_cap * abs(value)


def band_for(policy: Policy, value: float, spread: float | None) -> dict:
    """The band a metric of `value`, measured `spread` apart over seeds, may move in."""
    half = _half_width(policy, value, spread)
    low = value - half if policy.direction in (HIGHER, TWO_SIDED) else None
    high = value + half if policy.direction in (LOWER, TWO_SIDED) else None
    return {"low": low, "high": high}


@dataclass(frozen=True)
class Verdict:
    """One metric of one run against one stored metric: what pytest asserts and the report shows."""

    name: str
    # "ok" | "changed" | "not-recorded" (the entry lacks it) | "not-measured" (the run lacks it) |
    # "not-compared" (the entry is another device's and no cross-device band was measured for it)
    status: str
    current: Any = None
    baseline: Any = None
    direction: str | None = None
    band: dict | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def short(self) -> str:
        """'peak_gpu_allocated_mb 450.3 -> 871.7 MB' for a summary line."""
        unit = POLICY[self.name].unit if self.name in POLICY else ""
        if _is_number(self.current) and _is_number(self.baseline):
            return f"{self.name} {self.baseline:.6g} -> {self.current:.6g}{unit}"
        if isinstance(self.current, str) and isinstance(self.baseline, str) and max(
                len(self.current), len(self.baseline)) <= 24:
            return f"{self.name} {self.baseline} -> {self.current}"
        return f"{self.name} differs"

    def describe(self) -> str:
        if self.status != "changed":
            return f"{self.name}: {self.reason or self.status}"
        hint = POLICY[self.name].hint if self.name in POLICY else ""
        return self._difference() + (f" ({hint})" if hint else "")

    def _difference(self) -> str:
        if self.direction == EXACT:
            if isinstance(self.current, str) and "\n" in f"{self.current}{self.baseline}":
                diff = "\n".join(difflib.unified_diff(str(self.baseline).splitlines(), self.current.splitlines(),
                                                      "baseline", "this run", lineterm=""))
                return f"{self.name} differs from the baseline (exact):\n{diff}"
            return f"{self.name}: {self.current!r}, the baseline's is {self.baseline!r} (must be equal)"
        return (f"{self.name}: {self.current:.6g} vs baseline {self.baseline:.6g} "
                f"({self.current - self.baseline:+.4g}), outside the {self.direction} band {band_text(self.band)}")


def band_text(band: dict | None) -> str:
    if not band:
        return "exact"
    low, high = band.get("low"), band.get("high")
    if low is not None and high is not None:
        return f"[{low:.6g}, {high:.6g}]"
    return f">= {low:.6g}" if low is not None else f"<= {high:.6g}"


def travels(name: str, stored: dict | None = None) -> bool:
    """Whether a metric compares with an entry of another device as it is: the exact figures (counts,
    footprints, the template, the tokens, signatures) do not depend on the device, unless recording
    measured that they differ between two devices (`device_dependent` in the entry)."""
    if stored is not None and stored.get("device_dependent"):
        return False
    return name in POLICY and POLICY[name].direction == EXACT


def judge(name: str, current: Any, stored: dict | None, absent_reason: str = "",
          other_device: str | None = None, this_device: str | None = None) -> Verdict:
    """The one decision: is `current` within the stored metric's band (or equal, for exact)?

    `other_device`: the entry was recorded on that device, not this run's (`this_device`). A figure
    that travels is compared as it is; a number only through the cross-device band measured beside
    its own, and only when that band was measured over this run's device too: a band covers the
    devices it was measured on, and a third device is another measurement.
    """
    if current is None:  # first: when neither has it, what the run lacks is the reason
        return Verdict(name, "not-measured", baseline=stored and stored["value"],
                       direction=stored and stored["direction"], reason=absent_reason or f"this run has no {name}")
    if stored is None:
        return Verdict(name, "not-recorded", current=current,
                       reason=f"the baseline entry has no {name}; record it with --yoda-update-baselines")
    direction, value = stored["direction"], stored["value"]
    band = stored.get("band")
    if other_device is not None and not travels(name, stored):
        cross = stored.get("cross_device")
        if cross is not None and this_device is not None and this_device not in cross.get("devices", ()):
            return Verdict(name, "not-compared", current=current, baseline=value, direction=direction,
                           reason=f"{name} depends on the device; its cross-device band was measured over "
                                  f"{', '.join(cross.get('devices', ()))}, not {this_device}: record this device's "
                                  "entry with --yoda-update-baselines (it widens the band to this device)")
        if cross is None:
            why = ("it differed between the devices it was recorded on" if stored.get("device_dependent")
                   else "no cross-device band was measured for it")
            return Verdict(name, "not-compared", current=current, baseline=value, direction=direction,
                           reason=f"{name} depends on the device, the entry is {other_device}'s and {why}; record "
                                  "this device's entry with --yoda-update-baselines (it measures the band)")
        band = cross["band"]
        if direction == EXACT:  # a device-dependent exact figure: equal to one of the devices' values
            inside = any(_equal(current, sample) for samples in cross["samples"].values() for sample in samples)
            return Verdict(name, "ok" if inside else "changed", current, value, direction, None)
    inside = _equal(current, value) if direction == EXACT else _inside(current, band)
    return Verdict(name, "ok" if inside else "changed", current, value, direction, band)


def _equal(current: Any, baseline: Any) -> bool:
    if _is_number(current) and _is_number(baseline):
        return math.isclose(current, baseline, rel_tol=_SLACK, abs_tol=_SLACK)
    return current == baseline


def _inside(current: Any, band: dict) -> bool:
    if not _is_number(current):
        return False
    low, high = band.get("low"), band.get("high")
    slack = _SLACK * max(1.0, abs(current))
    return (low is None or current >= low - slack) and (high is None or current <= high + slack)


def refusal(entry: dict, record: RunRecord, scope: str = RUN) -> str | None:
    """Why this run must not be compared with `entry` (its inputs differ), or None.

    scope "run": every input (config, data split, step count, model); scope "model": only the
    model and its quantization and LoRA config, which is all a footprint or a template depends on.
    """
    stored = entry.get("inputs")
    if stored is None:
        return None  # a legacy entry recorded no inputs: nothing to refuse on
    current = run_inputs(record)
    reasons = []
    old_config, new_config = _without(stored.get("config") or {}, tuple(RETIRED)), current["config"]
    # An entry recorded with a retired field: its digest is the one its config has without it.
    stored_digest = _digest(old_config) if old_config != stored.get("config") else stored["config_digest"]
    if scope == MODEL:
        old_config = {key: old_config.get(key) for key in MODEL_SECTIONS}
        new_config = {key: new_config.get(key) for key in MODEL_SECTIONS}
    config_differs = old_config != new_config if scope == MODEL else stored_digest != current["config_digest"]
    if config_differs:
        changes = _config_changes(old_config, new_config)
        reasons.append("config differs: " + (", ".join(changes) if changes else "digest only"))
    if scope == RUN and stored["data"] != current["data"]:
        reasons.append("data split differs: " + ", ".join(
            f"{key} {stored['data'].get(key)} -> {current['data'].get(key)}"
            for key in sorted(set(stored["data"]) | set(current["data"]))
            if stored["data"].get(key) != current["data"].get(key)))
    if scope == RUN and not reasons and stored["global_step"] != current["global_step"]:
        reasons.append(f"step count differs: {stored['global_step']} -> {current['global_step']} "
                       f"(same config and data: {_packing_cause(record)})")
    if stored["model"] != current["model"]:
        reasons.append(f"model differs: {_short_model(stored['model'])} -> {_short_model(current['model'])}")
    return "; ".join(reasons) or None


def _packing_cause(record: RunRecord) -> str:
    """What the run's trl was recorded doing otherwise when packing (harness.recipe.compat), else the likely causes."""
    recorded = [entry.description for entry in record.compat if entry.setting == "packing"]
    return "this run's packing, as recorded: " + "; ".join(recorded) if recorded else "packing or tokenization changed"


def _config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += _config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key} {json.dumps(a)} -> {json.dumps(b)}")
    return changes


def _short_model(model: dict) -> str:
    return "/".join(str(model[key]) for key in ("profile", "model", "identity") if model.get(key) is not None)


# ------------------------------------------------------------------ load / validate
def empty_file(profile: str) -> dict:
    return {"schema": SCHEMA, "profile": profile, "entries": []}


def load(path: Path, profile: str) -> dict:
    """The validated baseline file for `profile` (an empty one if the file does not exist).

    A schema-1 file is validated as such and converted: each entry's values get the policy's
    bands around them (no spread was measured) and are marked `legacy`.
    """
    if not path.exists():
        return empty_file(profile)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BaselineError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    validate(raw, path, profile)
    if raw["schema"] in LEGACY_SCHEMAS:
        raw = _from_legacy(raw)
    for entry in raw["entries"]:  # entries recorded before 2026-12-02 kept the readers in the value
        tokens = entry["metrics"].get("tokens_as_read")
        if tokens and isinstance(tokens.get("value"), str):
            tokens["value"] = tokens_value(tokens["value"])
        _rekeyed(entry)
    return raw


def validate(raw: Any, path: Path, profile: str) -> None:
    def fail(field_: str, problem: str):
        raise BaselineError(f"{path}: {field_}: {problem}")

    if not isinstance(raw, dict):
        fail("(top level)", "expected an object")
    for key, kind in (("schema", int), ("profile", str), ("entries", list)):
        if key not in raw:
            fail(key, "missing")
        if not isinstance(raw[key], kind):
            fail(key, f"expected {kind.__name__}, got {type(raw[key]).__name__}")
    if raw["schema"] != SCHEMA and raw["schema"] not in LEGACY_SCHEMAS:
        fail("schema", f"version {raw['schema']} is not supported (expected {SCHEMA}, or legacy {LEGACY_SCHEMAS})")
    if raw["profile"] != profile:
        fail("profile", f"is {raw['profile']!r}, but this file is for profile {profile!r}")
    if raw.get("thresholds"):
        # Policy is the profile's (its [thresholds] table), so a profile that extends another inherits it.
        fail("thresholds", "the checks' thresholds are the profile's now: move them to the profile file's "
                           f"[thresholds] table ({', '.join(f'{k} = {v}' for k, v in sorted(raw['thresholds'].items()))}) "
                           "and delete this key")
    for index, entry in enumerate(raw["entries"]):
        where = f"entries[{index}]"
        if not isinstance(entry, dict):
            fail(where, "expected an object")
        for key, kind in (("version_set", str), ("device", str), ("recorded", str), ("packages", dict),
                          ("metrics", dict)):
            if not isinstance(entry.get(key), kind):
                fail(f"{where}.{key}", f"expected {kind.__name__}, got {entry.get(key)!r}")
        check_metric = _validate_legacy_metric if raw["schema"] in LEGACY_SCHEMAS else _validate_metric
        for name, metric in entry["metrics"].items():
            problem = check_metric(name, metric)
            if problem:
                fail(f"{where}.metrics.{name}{problem[0]}", problem[1])
        # A converted legacy entry, written back beside a new one, recorded no inputs.
        if raw["schema"] == SCHEMA and not entry.get("legacy"):
            prepared_only = (entry.get("provenance") or {}).get("stage") == "prepared"
            problem = _validate_inputs(entry.get("inputs"), prepared_only)
            if problem:
                fail(f"{where}.inputs{problem[0]}", problem[1])


def _validate_metric(name: str, metric: Any) -> tuple[str, str] | None:
    if name not in POLICY:
        return "", f"not a metric the harness compares (known: {', '.join(METRIC_NAMES)})"
    if not isinstance(metric, dict) or "value" not in metric or "direction" not in metric:
        return "", "expected an object with 'value' and 'direction'"
    value, direction = metric["value"], metric["direction"]
    if direction not in DIRECTIONS:
        return ".direction", f"expected one of {DIRECTIONS}, got {direction!r}"
    if direction == EXACT:
        if not (_is_number(value) or isinstance(value, str)):
            return ".value", f"expected a number or text, got {value!r}"
        return None
    if not _is_number(value):
        return ".value", f"expected a number for a {direction} metric, got {value!r}"
    band = metric.get("band")
    if not isinstance(band, dict) or set(band) != {"low", "high"}:
        return ".band", f"expected {{'low': n|null, 'high': n|null}}, got {band!r}"
    needs_low, needs_high = direction in (HIGHER, TWO_SIDED), direction in (LOWER, TWO_SIDED)
    for side, needed in (("low", needs_low), ("high", needs_high)):
        bound = band[side]
        if needed and not _is_number(bound):
            return f".band.{side}", f"a {direction} metric needs a number, got {bound!r}"
        if not needed and bound is not None:
            return f".band.{side}", f"a {direction} metric has no {side} bound, got {bound!r}"
    if (needs_low and band["low"] > value) or (needs_high and band["high"] < value):
        return ".band", f"{band_text(band)} does not contain the value {value!r}"
    spread = metric.get("spread")
    if spread is not None and (not _is_number(spread) or spread < 0):
        return ".spread", f"expected a number >= 0 or null, got {spread!r}"
    cross = metric.get("cross_device")
    if cross is not None:
        if not isinstance(cross, dict) or not isinstance(cross.get("band"), dict):
            return ".cross_device", f"expected an object with a band, got {cross!r}"
        low, high = cross["band"].get("low"), cross["band"].get("high")
        if (needs_low and not (_is_number(low) and low <= value)) or (needs_high and not (_is_number(high) and high >= value)):
            return ".cross_device.band", f"{band_text(cross['band'])} does not contain the value {value!r}"
    return None


def _validate_legacy_metric(name: str, metric: Any) -> tuple[str, str] | None:
    if not isinstance(metric, dict) or "value" not in metric or "tolerance" not in metric:
        return "", "expected an object with 'value' and 'tolerance'"
    value = metric["value"]
    if not (_is_number(value) or isinstance(value, str)):
        return ".value", f"expected a number or text, got {value!r}"
    tolerance = metric["tolerance"]
    if not isinstance(tolerance, dict) or not tolerance or any(
        key not in ("abs", "rel") or not _is_number(v) or v < 0 for key, v in tolerance.items()
    ):
        return ".tolerance", f"expected {{'abs': n}} and/or {{'rel': n}} with n >= 0, got {tolerance!r}"
    return None


def _validate_inputs(inputs: Any, prepared_only: bool = False) -> tuple[str, str] | None:
    """An entry's inputs; one recorded from the prepared stage alone (`provenance.stage`) took no step."""
    if not isinstance(inputs, dict):
        return "", f"expected an object (config digest, data, step count, model), got {inputs!r}"
    for key, kind in (("config_digest", str), ("config", dict), ("data", dict), ("global_step", int),
                      ("model", dict)):
        if key == "global_step" and prepared_only and inputs.get(key) is None:
            continue
        if not isinstance(inputs.get(key), kind):
            return f".{key}", f"expected {kind.__name__}, got {inputs.get(key)!r}"
    return None


def _from_legacy(raw: dict) -> dict:
    """A schema-1 file as schema 2: policy bands around the recorded values, `legacy` marked."""
    converted = dict(raw, schema=SCHEMA, legacy_schema=raw["schema"])
    converted["entries"] = [dict(entry, legacy=True, metrics={
        name: _metric_record(name, [metric["value"]], legacy=True)
        for name, metric in entry["metrics"].items() if name in POLICY
    }) for entry in raw["entries"]]
    return converted


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------ choose an entry, compare
def select_entry(baseline: dict, environment: dict) -> tuple[dict | None, str]:
    """The entry to compare with, and why that one.

    In order: the same version set on the same device; the same version set on another device of
    the same type (CPU or CUDA), compared through its cross-device bands; then the nearest version
    set (fewest tracked packages at another version, then the newest), same device first.
    """
    device = env.device_kind(environment)
    group = (env.device_type(environment["device"]), environment.get("processes", 1))
    version_set = env.version_set_id(environment)
    same_device = [e for e in baseline["entries"] if e["device"] == device]
    same_type = [e for e in baseline["entries"] if e["device"] != device and _group_of(e) == group]
    for candidates, where in ((same_device, "same device"), (same_type, "another device")):
        exact = sorted((e for e in candidates if e["version_set"] == version_set),
                       key=lambda e: (_cross_banded(e), e["recorded"]), reverse=True)
        if exact:
            return exact[0], f"same library versions, {where}"
    for candidates, where in ((same_device, "same device"), (same_type, "another device")):
        if candidates:
            newest_first = sorted(candidates, key=lambda e: e["recorded"], reverse=True)
            # min() keeps the first of equals: of the entries nearest in versions, the newest.
            nearest = min(newest_first, key=lambda e: len(env.changed_packages(e["packages"], environment["packages"])))
            return nearest, f"nearest entry, {where} (library versions differ: every difference may show as CHANGED)"
    recorded = sorted({e["device"] for e in baseline["entries"]})
    return None, f"no baseline entry for {device}" + (f" (entries for: {', '.join(recorded)})" if recorded else "")


def _rekeyed(entry: dict) -> dict:
    """An entry's key derived from its recorded device facts by today's rule (`env.device_kind`), so
    a file recorded under an older rule is read as the code keys runs now; facts are the record."""
    facts = entry.get("device_facts")
    if facts:
        processes = re.search(r", (\d+) processes$", entry["device"])
        entry["device"] = env.device_kind({"device": facts, "processes": int(processes.group(1)) if processes else 1})
    return entry


def entry_device_type(entry: dict) -> str:
    """'cpu' or 'cuda' of an entry (from its device facts; entries recorded before them: from the key)."""
    facts = entry.get("device_facts")
    if facts:
        return env.device_type(facts)
    return "cpu" if entry["device"].split(",")[0].split(" ")[0] == "cpu" else "cuda"


def _group_of(entry: dict) -> tuple[str, int]:
    """Entries that may share numbers through a cross-device band: one device type, one process
    count (N processes take 1/N of the steps: never the same run as one process's)."""
    processes = re.search(r", (\d+) processes$", entry["device"])
    return entry_device_type(entry), int(processes.group(1)) if processes else 1


def _cross_banded(entry: dict) -> bool:
    return any("cross_device" in metric for metric in entry["metrics"].values())


def entry_device_name(entry: dict) -> str:
    """How the verdict names the device an entry was recorded on."""
    facts = entry.get("device_facts")
    return env.describe_device(facts) if facts else entry["device"]


@dataclass
class Comparison:
    path: Path
    profile: str
    entry: dict | None
    reason: str
    changed: list[str]
    device: str = ""  # this run's entry key
    device_description: str = ""
    # The last run measured, and what `measure` read from it: every metric's check judges the same run.
    _measured: tuple = field(default=(None, None, None), repr=False, compare=False)

    @property
    def other_device(self) -> str | None:
        """The entry's device when it is not this run's (numbers then compare through cross-device bands)."""
        if self.entry is None or self.entry["device"] == self.device:
            return None
        return self.entry["device"]

    def value(self, name: str) -> Any:
        if self.entry is None or name not in self.entry["metrics"]:
            return None
        return self.entry["metrics"][name]["value"]

    def judge(self, name: str, record: RunRecord, template: dict | None) -> Verdict:
        values, absent = self._measure(record, template)
        stored = self.entry["metrics"].get(name) if self.entry else None
        return judge(name, values.get(name), stored, absent.get(name, ""), self.other_device, self.device)

    def judge_all(self, record: RunRecord, template: dict | None) -> list[Verdict]:
        """Every metric of the policy or the entry, judged by the same function pytest uses."""
        values, absent = self._measure(record, template)
        stored = self.entry["metrics"] if self.entry else {}
        return [judge(name, values.get(name), stored.get(name), absent.get(name, ""), self.other_device, self.device)
                for name in sorted(set(values) | set(stored))]

    def _measure(self, record: RunRecord, template: dict | None) -> tuple[dict[str, Any], dict[str, str]]:
        """`measure` of the run, once for the same record and template objects (a session's checks
        judge one metric each, all of the same run)."""
        last_record, last_template, measured = self._measured
        if record is not last_record or template is not last_template:
            measured = measure(record, template)
            self._measured = (record, template, measured)
        return measured

    def refusal(self, record: RunRecord, scope: str = RUN) -> str | None:
        return refusal(self.entry, record, scope) if self.entry else None

    def context(self) -> str:
        if self.entry is None:
            return f"baseline {self.path.name} ({self.reason}; this is {self.device_description or self.device})"
        libs = "; ".join(self.changed) if self.changed else "no library changed"
        legacy = ", legacy entry: policy bands, no measured spread" if self.entry.get("legacy") else ""
        where = (f"recorded on {entry_device_name(self.entry)}; this is {self.device_description or self.device}"
                 if self.other_device else f"device {self.device}")
        return f"baseline {self.path.name} ({self.reason}{legacy}; {where}; {libs})"


def compare(path: Path, profile: str, environment: dict) -> Comparison:
    baseline = load(path, profile)
    entry, reason = select_entry(baseline, environment)
    changed = env.changed_packages(entry["packages"], environment["packages"]) if entry else []
    return Comparison(path, profile, entry, reason, changed, env.device_kind(environment),
                      env.describe_device(environment["device"]))


# ------------------------------------------------------------------ record
def _metric_record(name: str, samples: list, legacy: bool = False) -> dict:
    policy = POLICY[name]
    if policy.direction == EXACT:
        record = {"value": samples[0], "direction": EXACT}
    else:
        value = statistics.fmean(samples)
        spread = statistics.stdev(samples) if len(samples) > 1 else None
        record = {"value": value, "direction": policy.direction, "spread": spread, "samples": samples,
                  "k": policy.k, "rel_floor": policy.rel_floor, "abs_floor": policy.abs_floor,
                  "band": band_for(policy, value, spread)}
        if policy.rel_cap is not None:
            record.update(rel_cap=policy.rel_cap, capped=capped(policy, value, spread))
    if legacy:
        record["legacy"] = True
    return record


def entry_from_runs(runs: list[tuple[RunRecord, dict | None]], provenance: dict | None = None) -> dict:
    """The entry for one or more runs of one config that differ only in their seed.

    Numbers: the mean, the sample spread and the band from them. Exact metrics must agree across
    the runs (a footprint that depends on the seed is no structural figure): else BaselineError.
    """
    record, others = runs[0][0], runs[1:]
    inputs = run_inputs(record)
    for other, _ in others:
        if run_inputs(other) != inputs:
            problem = refusal({"inputs": inputs}, other) or "inputs differ"
            raise BaselineError(f"run {other.key} cannot share an entry with {record.key}: {problem}")
    measured = [measure(r, t)[0] for r, t in runs]
    metrics = {}
    for name in sorted(measured[0]):
        samples = [values.get(name) for values in measured]
        if POLICY[name].direction == EXACT and any(sample != samples[0] for sample in samples):
            raise BaselineError(f"{name} differs between the runs ({', '.join(map(repr, samples))[:200]}): "
                                "an exact metric must not depend on the seed")
        if None in samples:
            raise BaselineError(f"{name} was measured in some runs only")
        metrics[name] = _metric_record(name, samples)
    environment = record.environment
    return {
        # Which harness recorded it (commit, dirty tree), and whether invariants failed and it was forced.
        "provenance": provenance or {},
        "version_set": env.version_set_id(environment.as_dict()),
        "device": env.device_kind(environment.as_dict()),
        # Everything known of the device (CPU model, kernels, pins; GPU compute capability, CUDA, driver).
        "device_facts": environment.device,
        "recorded": record.created,
        "packages": environment.packages,
        "python": environment.python,
        "run_key": record.key,
        "runs": [{"run_key": r.key, "seed": r.recipe_config.training.seed} for r, _ in runs],
        "inputs": inputs,
        # The curve itself, so a report can draw this run's loss against the baseline's.
        "loss_history": to_json(record.training.loss_history) if record.trained else [],
        # The libraries' deprecation warnings during the run: a new one later is CHANGED (suites/test_warnings.py).
        "library_warnings": [entry.as_dict() for entry in record.library_warnings],
        "metrics": metrics,
    }


def entry_from_run(record: RunRecord, template: dict | None, provenance: dict | None = None) -> dict:
    return entry_from_runs([(record, template)], provenance)


def zero_spanning(entry: dict) -> list[str]:
    """Higher-is-better metrics whose band reaches zero: such a comparison could never fail."""
    return [name for name, metric in entry["metrics"].items()
            if metric["direction"] == HIGHER and metric["band"]["low"] <= 0]


@contextlib.contextmanager
def file_lock(path: Path):
    """One writer of a baseline file at a time (processes of one machine), without a lock file beside it."""
    import tempfile

    from filelock import FileLock

    name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with FileLock(Path(tempfile.gettempdir()) / f"yoda-harness-baseline-{name}.lock"):
        yield


def update(path: Path, profile: str, record: RunRecord, template: dict | None,
           spread_runs: list[tuple[RunRecord, dict | None]] = (), provenance: dict | None = None) -> list[str]:
    """Record the run (and the runs of other seeds in `spread_runs`) as the entry for its version
    set and device, replacing the old one; return the old -> new lines. `provenance` (which harness
    recorded it, whether invariants failed and it was forced) is stored in the entry."""
    baseline = load(path, profile)
    new_entry = entry_from_runs([(record, template), *spread_runs], provenance)
    useless = zero_spanning(new_entry)
    if useless:
        raise BaselineError(f"{path}: not recorded: the band of {', '.join(useless)} reaches zero, so it could "
                            "never fail; the seeds disagree too much (record over more seeds, or fix the run)")
    old_entry = next((e for e in baseline["entries"]
                      if e["version_set"] == new_entry["version_set"] and e["device"] == new_entry["device"]), None)
    baseline["entries"] = [e for e in baseline["entries"] if e is not old_entry] + [new_entry]
    baseline["entries"].sort(key=lambda e: (e["device"], e["recorded"]))
    lines = diff_entries(old_entry, new_entry) + cross_device_bands(baseline["entries"], new_entry)
    baseline.pop("legacy_schema", None)
    baseline["schema"] = SCHEMA
    files.write_json(path, baseline)
    return lines


def _cross_device_peers(entries: list[dict], entry: dict) -> list[dict]:
    """The entries of the same version set and inputs on other devices of the same type."""
    return [e for e in entries if e is not entry and e["version_set"] == entry["version_set"]
            and e["device"] != entry["device"] and _group_of(e) == _group_of(entry)
            and e.get("inputs") == entry.get("inputs") and not e.get("legacy")]


def cross_device_bands(entries: list[dict], entry: dict) -> list[str]:
    """Measure, from every device's samples, how far each number moves between devices of one type,
    and write that band beside each entry's own (`cross_device`); mark an exact figure that differs
    between devices `device_dependent`. Returns the lines recording prints."""
    peers = _cross_device_peers(entries, entry)
    if not peers:
        return []
    group = [entry, *peers]
    devices = sorted(e["device"] for e in group)
    lines = [f"cross-device bands measured over {', '.join(devices)}"]
    for name in sorted(set.intersection(*(set(e["metrics"]) for e in group))):
        policy = POLICY.get(name)
        if policy is None:
            continue
        records = [e["metrics"][name] for e in group]
        samples = {e["device"]: list(e["metrics"][name].get("samples") or [e["metrics"][name]["value"]]) for e in group}
        if policy.direction == EXACT:
            values = {json.dumps(record["value"], sort_keys=True) for record in records}
            if len(values) > 1:
                for record in records:
                    record.update(device_dependent=True, cross_device={"devices": devices, "samples": samples})
                lines.append(f"{name}: differs between the devices: compared on the same device, or equal to one "
                             "of the devices' values")
            continue
        pooled = [value for values in samples.values() for value in values]
        spread = statistics.stdev(pooled) if len(pooled) > 1 else None
        for record in records:
            record["cross_device"] = _cross_record(policy, record["value"], pooled, spread, devices, samples)
        lines.append(f"{name}: cross-device band {band_text(entry['metrics'][name]['cross_device']['band'])} "
                     f"(samples {', '.join(f'{d}: {v}' for d, v in samples.items())})")
    return lines


def _cross_record(policy: Policy, value: float, pooled: list[float], spread: float | None, devices: list[str],
                  samples: dict) -> dict:
    """A band around this entry's value that k x the pooled spread, the policy's floors and every
    device's every sample fit in (capped as the same-device band is)."""
    farthest = max(abs(sample - value) for sample in pooled)
    half = max(_half_width(policy, value, spread), farthest)
    capped_band = policy.rel_cap is not None and half > policy.rel_cap * abs(value)
    if capped_band:
        half = policy.rel_cap * abs(value)
    band = {"low": value - half if policy.direction in (HIGHER, TWO_SIDED) else None,
            "high": value + half if policy.direction in (LOWER, TWO_SIDED) else None}
    return {"devices": devices, "samples": samples, "spread": spread, "band": band, "capped": capped_band}


def diff_entries(old: dict | None, new: dict) -> list[str]:
    """The old -> new lines an update prints for review (values, bands, capped bands)."""
    lines = [f"new entry for {new['device']} / version set {new['version_set']}"] if old is None else []
    old_metrics = old["metrics"] if old else {}
    for name in sorted(set(old_metrics) | set(new["metrics"])) if old else ():
        before = old_metrics.get(name, {}).get("value")
        after = new["metrics"].get(name, {}).get("value")
        if before != after:
            if before is None or after is None:
                lines.append(f"{name}: {'newly recorded' if before is None else 'no longer recorded'}")
            elif isinstance(before, str) or isinstance(after, str):
                lines.append(f"{name}: text changed")
            else:
                lines.append(f"{name}: {before} → {after}")
        band = new["metrics"].get(name, {}).get("band")
        if band and band != old_metrics.get(name, {}).get("band"):
            lines.append(f"{name}: band {band_text(band)} (spread {new['metrics'][name].get('spread')})")
    lines += [f"{name}: k x spread {metric['k'] * metric['spread']:.4g} is wider than the cap "
              f"({metric['rel_cap']:.0%} of {metric['value']:.4g}): the seeds alone move it this far; "
              "expect CHANGED from seed noise" for name, metric in sorted(new["metrics"].items()) if metric.get("capped")]
    return lines or ["no metric changed"]
