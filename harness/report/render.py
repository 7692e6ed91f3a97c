"""Context building and rendering of the HTML reports.

Everything shown comes from what the run recorded (manifest + artifacts), the baseline
comparison and the suite outcomes; the report never re-scores or re-runs anything.
Templates are rendered with autoescape on: model outputs, data, library strings are text.
The only markup inserted unescaped is the harness's own: the stylesheet, the script and the
figures' SVG (matplotlib escapes the text it draws).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup

from harness.report import figures
from harness.report.baseline import _ROW_STATUS, baseline_context  # noqa: F401  (tests import _ROW_STATUS from here)
from harness.report.chat_template import template_context
from harness.report.formatting import MB, is_number, item_at
from harness.report.header import header_context
from harness.report.page import now, render, write
from harness.report.quality import quality_context
from harness.report.sentences import sentences_context
from harness.report.summary import notices, suites_context


# Bytes per element of the dtypes a safetensors header names (the adapter's saved size).
DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2}

# Package columns shown first in the matrix (others follow by name).
MATRIX_PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate")
MATRIX_METRICS = ("bleu", "base_bleu", "chrf", "stop_rate", "non_empty_stop_rate", "footprint_adapted_mb",
                  "trainable_parameters", "global_step", "loss_first", "loss_last", "train_loss")

# The recipe's phases in run order (run.json stores them sorted by name).
PHASE_ORDER = ("checkpoint", "load", "lora", "data", "trainer", "train", "save", "generate", "reload", "score")


# ------------------------------------------------------------------ public
def render_run_report(run, path: Path, outcomes: dict | None = None, comparison=None, *,
                      matrix_rows: list[dict] | None = None, verdicts: dict | None = None) -> Path:
    """Write the report of a finished run (`harness.recipe.Run`) to `path`; return the path.

    outcomes: {suite file: [(node id, "passed" | "failed" | "skipped"), ...]} as the plugin
    records them, or None when only the run directory is known (the CLI).
    comparison: `harness.baselines.Comparison` for the run's profile, or None.
    verdicts: `harness.verdicts.collected(config)` (the BROKEN and CHANGED lists), or None.
    """
    context = run_context(run, outcomes, comparison, matrix_rows)
    context["verdicts"] = verdicts
    return write(Path(path), render("run.html", context))


def render_matrix_report(rows: list[dict], path: Path) -> Path:
    """Write the version-matrix report (rows from `harness.matrix.report_rows`) to `path`."""
    context = {"title": "yoda-harness version matrix", "matrix": matrix_context(rows), "generated": now()}
    return write(Path(path), render("matrix.html", context))


def _artifact(run, name: str):
    try:
        return run.artifact(name)
    except (FileNotFoundError, ValueError):
        return None


# ------------------------------------------------------------------ run context
def run_context(run, outcomes: dict | None = None, comparison=None, matrix_rows: list[dict] | None = None) -> dict:
    manifest = run.manifest
    template = _artifact(run, "template.json")
    generations = {which: _artifact(run, f"generations_{which}.jsonl") for which in ("base", "tuned")}
    sentences = sentences_context(manifest, generations)
    return {
        "title": f"yoda-harness report: {manifest.get('profile', '?')} / {manifest.get('key', '?')}",
        "generated": now(),
        "header": header_context(run, comparison),
        "notices": notices(manifest),
        "suites": suites_context(outcomes),
        "baseline": baseline_context(manifest, template, comparison),
        "quality": quality_context(manifest.get("metrics") or {}),
        "sentences": sentences,
        "figures": figures_context(manifest, sentences["rows"], comparison),
        "training": training_context(manifest),
        "memory": memory_context(manifest),
        "template": template_context(template, manifest.get("tokens") or {}),
        "phases": phases_context(manifest.get("phase_seconds") or {}),
        "matrix": matrix_context(matrix_rows) if matrix_rows is not None else None,
    }


# ------------------------------------------------------------------ figures, training, memory
def figures_context(manifest: dict, sentences: list[dict], comparison) -> dict:
    history = (manifest.get("training") or {}).get("loss_history") or []
    baseline_history = _baseline_history(comparison)
    base = [row["base_bleu"] for row in sentences if row["base_bleu"] is not None]
    tuned = [row["tuned_bleu"] for row in sentences if row["tuned_bleu"] is not None]
    return {
        "loss": _svg(figures.loss_curve(history, baseline_history)),
        "loss_has_baseline": bool(baseline_history),
        "loss_points": len(history),
        "bleu": _svg(figures.bleu_histogram(base, tuned)),
        "phases": _svg(figures.phase_bars(in_run_order(manifest.get("phase_seconds") or {}))),
    }


def _svg(text: str | None) -> Markup | None:
    return Markup(text) if text else None


def _baseline_history(comparison) -> list[dict] | None:
    """The baseline entry's loss curve, in the manifest's shape [{"step", "loss"}], where it stores one."""
    entry = getattr(comparison, "entry", None) or {}
    points = [p for p in entry.get("loss_history") or []
              if isinstance(p, dict) and is_number(p.get("step")) and is_number(p.get("loss"))]
    return points or None


def training_context(manifest: dict) -> dict:
    training = manifest.get("training") or {}
    history = training.get("loss_history") or []
    return {
        "global_step": training.get("global_step"),
        "train_loss": training.get("train_loss"),
        "train_runtime": training.get("train_runtime"),
        "loss_first": history[0]["loss"] if history else None,
        "loss_last": history[-1]["loss"] if history else None,
        "logging_steps": ((manifest.get("config") or {}).get("training") or {}).get("logging_steps"),
        "packed_rows": training.get("packed_rows"),
        "train_examples": training.get("train_examples"),
        "train_batch_size": training.get("train_batch_size"),
        "templated_tokens": training.get("templated_tokens"),
        "lora_b_before": training.get("lora_b_abs_sum_before"),
        "lora_b_after": training.get("lora_b_abs_sum_after"),
        "adaptations": training.get("sft_config_adaptations") or [],
        # Every release difference adapted (harness.compat) and the libraries' deprecation warnings.
        "compat": [entry.get("description", "") for entry in manifest.get("compat") or []],
        "library_warnings": manifest.get("library_warnings") or [],
        "config": manifest.get("config") or {},
    }


def memory_context(manifest: dict) -> dict:
    """Measured against the analytic prediction, and the recipe's Phi-3 figures where they apply."""
    structure = manifest.get("structure") or {}
    predicted = structure.get("predicted") or {}
    training = manifest.get("training") or {}
    adapter = manifest.get("adapter") or {}
    trainable, total = structure.get("trainable_parameters"), structure.get("total_parameters")
    dtypes = adapter.get("dtypes") or []
    adapter_params = predicted.get("trainable_parameters")
    saved_bytes = (adapter_params * DTYPE_BYTES[dtypes[0]]
                   if len(dtypes) == 1 and dtypes[0] in DTYPE_BYTES and is_number(adapter_params) else None)
    rows = [
        _measured_row("footprint after 4-bit load", "bytes", structure.get("footprint_loaded_bytes"),
                      predicted.get("footprint_loaded_bytes")),
        _measured_row("footprint after prepare + LoRA", "bytes", structure.get("footprint_adapted_bytes"),
                      predicted.get("footprint_adapted_bytes")),
        _measured_row("trainable parameters", "count", trainable, predicted.get("trainable_parameters")),
        _measured_row("total parameters", "count", total, predicted.get("total_parameters")),
        _measured_row("4-bit linear modules", "count", len(structure.get("quantized_linear_modules") or []),
                      predicted.get("quantized_modules")),
        _measured_row("parameters in the saved adapter", "count", adapter.get("tensor_parameters"), adapter_params),
        _measured_row(f"saved adapter data ({', '.join(dtypes) or '?'})", "bytes",
                      adapter.get("safetensors_data_bytes"), saved_bytes),
    ]
    return {
        "rows": rows,
        "footprint_adapted": rows[1], "trainable": rows[2], "total": rows[3],
        "reference": phi3_reference(_profile_reference(manifest), structure),
        "trainable_share": trainable / total if is_number(trainable) and is_number(total) and total else None,
        "peak_gpu": training.get("peak_gpu_allocated_bytes"),
        "peak_rss": training.get("peak_rss_bytes"),
        "unquantized": sorted((structure.get("unquantized_modules") or {}).items()),
        "target_modules": structure.get("target_modules") or [],
        "adapter_files": adapter.get("files") or [],
        "adapter_bytes": adapter.get("safetensors_bytes"),
    }


def _measured_row(label: str, unit: str, measured: Any, predicted: Any) -> dict:
    both = is_number(measured) and is_number(predicted)
    return {"label": label, "unit": unit, "measured": measured, "predicted": predicted,
            "match": measured == predicted if both else None, "delta": measured - predicted if both else None}


def _profile_reference(manifest: dict) -> dict:
    """The published figures the run's profile reproduces: recorded in the run, else its profile's (older runs)."""
    from harness.profiles import PROFILES

    if "reference" in manifest:
        return manifest["reference"]
    found = PROFILES.get(manifest.get("profile") or "")
    return dict(found.reference) if found else {}


def phi3_reference(reference: dict, structure: dict) -> dict:
    """The recipe's published Phi-3-mini figures; compared (MB to two decimals) on the profiles that reproduce them."""
    from harness.profiles import PROFILES

    applies = bool(reference)
    published = reference or PROFILES["phi3"].reference
    measured = {
        "footprint_loaded_mb": _mb2(structure.get("footprint_loaded_bytes")),
        "footprint_adapted_mb": _mb2(structure.get("footprint_adapted_bytes")),
        "trainable_parameters": structure.get("trainable_parameters"),
        "total_parameters": structure.get("total_parameters"),
    }
    labels = {"footprint_loaded_mb": "footprint after 4-bit load (MB)",
              "footprint_adapted_mb": "footprint after prepare + LoRA (MB)",
              "trainable_parameters": "trainable parameters", "total_parameters": "total parameters"}
    rows = [{"label": labels[key], "reference": reference, "measured": measured[key] if applies else None,
             "match": measured[key] == reference if applies and measured[key] is not None else None,
             "digits": 2 if key.endswith("_mb") else 0}
            for key, reference in published.items()]
    return {"applies": applies, "rows": rows,
            "share": published["trainable_parameters"] / published["total_parameters"]}


def _mb2(value: Any) -> float | None:
    return round(value / MB, 2) if is_number(value) else None


def in_run_order(phases: dict) -> dict:
    rank = {name: i for i, name in enumerate(PHASE_ORDER)}
    return dict(sorted(phases.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def phases_context(phases: dict) -> dict:
    phases = in_run_order(phases)
    total = sum(v for v in phases.values() if is_number(v))
    return {"rows": [{"name": name, "seconds": seconds,
                      "share": seconds / total if total and is_number(seconds) else None}
                     for name, seconds in phases.items()],
            "total": total}


# ------------------------------------------------------------------ matrix
def matrix_context(rows: list[dict] | None) -> dict:
    rows = list(rows or [])
    present = {p for row in rows for p in (row.get("packages") or {})}
    packages = [p for p in MATRIX_PACKAGES if p in present] + sorted(present - set(MATRIX_PACKAGES))
    suites = sorted({s for row in rows for s in (row.get("suites") or {})})
    present_metrics = {m for row in rows for m in (row.get("metrics") or {})}
    metrics = [m for m in MATRIX_METRICS if m in present_metrics] + sorted(present_metrics - set(MATRIX_METRICS))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("status", "?")] = counts.get(row.get("status", "?"), 0) + 1
    return {
        "packages": packages, "suites": suites, "metrics": metrics, "counts": sorted(counts.items()),
        "rows": [{
            "version_set": row.get("version_set"),
            "status": row.get("status"),
            "reason": row.get("reason"),
            "packages": row.get("packages") or {},
            "suites": row.get("suites") or {},
            "metrics": row.get("metrics") or {},
        } for row in rows],
    }
