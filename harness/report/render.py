"""Context building and rendering of the HTML reports.

Everything shown comes from what the run recorded (manifest + artifacts), the baseline
comparison and the suite outcomes; the report never re-scores or re-runs anything.
Templates are rendered with autoescape on: model outputs, data, library strings are text.
The only markup inserted unescaped is the harness's own: the stylesheet, the script and the
figures' SVG (matplotlib escapes the text it draws).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from markupsafe import Markup

from harness.data import DEFAULT_COLUMNS, Columns
from harness.report import figures

TEMPLATES = Path(__file__).parent / "templates"
MB = 1_000_000


# Bytes per element of the dtypes a safetensors header names (the adapter's saved size).
DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2}

# Package columns shown first in the matrix (others follow by name).
MATRIX_PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate")
MATRIX_METRICS = ("bleu", "base_bleu", "chrf", "stop_rate", "non_empty_stop_rate", "footprint_adapted_mb",
                  "trainable_parameters", "global_step", "loss_first", "loss_last", "train_loss")

# The recipe's phases in run order (run.json stores them sorted by name).
PHASE_ORDER = ("checkpoint", "load", "lora", "data", "trainer", "train", "save", "generate", "reload", "score")

# How many sentences are highlighted as the worst: a fifth of them, at least one, at most five.
WORST_SHARE, WORST_MAX = 0.2, 5

# Special tokens in the Phi-3 / Llama styles, and byte-fallback tokens.
_SPECIAL = re.compile(r"<\|[^|<>\s]{1,40}\|>|<unk>|</?s>|<0x[0-9A-Fa-f]{2}>")


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
    return _write(Path(path), _render("run.html", context))


def render_matrix_report(rows: list[dict], path: Path) -> Path:
    """Write the version-matrix report (rows from `harness.matrix.report_rows`) to `path`."""
    context = {"title": "yoda-harness version matrix", "matrix": matrix_context(rows), "generated": _now()}
    return _write(Path(path), _render("matrix.html", context))


# ------------------------------------------------------------------ environment
@functools.lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    environment = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["num"] = fmt_number
    environment.filters["signed"] = fmt_signed
    environment.filters["mb"] = lambda b: "—" if not _is_number(b) else f"{b / MB:,.2f} MB"
    environment.filters["pct"] = lambda v: "—" if not _is_number(v) else f"{100 * v:.1f} %"
    environment.filters["sortkey"] = sort_key
    return environment


def _render(template: str, context: dict) -> str:
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    style = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    # Only this exact script may run (an injected <script> would be refused by the browser as
    # well as escaped), and nothing may be fetched: the file is self-contained.
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    return _environment().get_template(template).render(
        script=Markup(script), style=Markup(style), csp=csp, **context)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


# ------------------------------------------------------------------ formatting
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt_number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.{digits}g}"  # 0.0034, not 0.00
        return f"{value:,.{digits}f}"
    return str(value)


def fmt_signed(value: Any, digits: int = 2) -> str:
    if not _is_number(value):
        return "—"
    if isinstance(value, int):
        return f"{value:+,}"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:+.{digits}g}"
    return f"{value:+,.{digits}f}"


def sort_key(value: Any) -> str:
    """`data-sort` attribute: a number as a plain decimal, anything else empty (sorted last)."""
    if _is_number(value) and math.isfinite(value):
        return repr(float(value))
    return ""


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
        "generated": _now(),
        "header": header_context(run, comparison),
        "notices": notices(manifest),
        "suites": suites_context(outcomes),
        "baseline": baseline_context(manifest, template, comparison),
        "quality": quality_context(manifest.get("metrics") or {}, Columns.of_run(manifest)),
        "sentences": sentences,
        "figures": figures_context(manifest, sentences["rows"], comparison),
        "training": training_context(manifest),
        "memory": memory_context(manifest),
        "template": template_context(template, manifest.get("tokens") or {}),
        "phases": phases_context(manifest.get("phase_seconds") or {}),
        "matrix": matrix_context(matrix_rows) if matrix_rows is not None else None,
    }


def header_context(run, comparison=None) -> dict:
    manifest = run.manifest
    environment = manifest.get("environment") or {}
    entry = getattr(comparison, "entry", None) or {}
    baseline_packages = entry.get("packages") or {}
    packages = [{"name": name, "version": version,
                 "baseline": baseline_packages.get(name) if entry else None,
                 "changed": bool(entry) and baseline_packages.get(name) != version}
                for name, version in sorted((environment.get("packages") or {}).items())]
    return {
        "profile": manifest.get("profile"),
        "profile_kind": manifest.get("profile_kind"),
        "model": manifest.get("model"),
        "device": _device_text(environment.get("device") or {}),
        "python": environment.get("python"),
        "packages": packages,
        "created": manifest.get("created"),
        "key": manifest.get("key"),
        "version_set": manifest.get("version_set"),
        "directory": str(run.directory),
        "reused": getattr(run, "reused", None),
        "data": manifest.get("data") or {},
    }


def _device_text(device: dict) -> str:
    if device.get("kind") == "cpu":
        return f"CPU ({device.get('name') or 'unknown'})"
    return f"{device.get('name') or 'GPU'} x{device.get('count', 1)}, CUDA {device.get('cuda') or '?'}"


def notices(manifest: dict) -> list[str]:
    """What a reader must know before reading any number: random weights, profile skips."""
    found = []
    if manifest.get("profile_kind") == "structural":
        found.append(f"{manifest.get('profile')} is a structural profile with random weights: its quality figures "
                     "(BLEU, chrF, TER, stop rate, output length, sentence scores) and its loss mean nothing. "
                     "Read it for memory, parameters, labels and the chat template.")
    for marker, reason in sorted(_profile_skips(manifest).items()):
        found.append(f"The {marker} checks skip on this profile: {reason}")
    return found


def _profile_skips(manifest: dict) -> dict:
    """What the run's profile skips, with the reasons: recorded in the run, else its profile's (older runs)."""
    from harness.profiles import PROFILES

    if "skips" in manifest:
        return manifest["skips"]
    found = PROFILES.get(manifest.get("profile") or "")
    return dict(found.skips) if found else {}


def suites_context(outcomes: dict | None) -> dict | None:
    """Per suite file: status (failed > passed > skipped), counts, and each check's outcome."""
    if outcomes is None:
        return None
    suites = [_suite(name, outcomes[name]) for name in sorted(outcomes)]
    totals = {key: sum(s["counts"][key] for s in suites) for key in ("passed", "failed", "skipped")}
    return {"suites": suites, "totals": totals, "status": _status(totals)}


def _suite(name: str, results: list) -> dict:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for _nodeid, outcome in results:
        counts[outcome] = counts.get(outcome, 0) + 1
    return {"name": name, "status": _status(counts), "counts": counts,
            "checks": [{"nodeid": nodeid, "test": nodeid.split("::", 1)[-1], "outcome": outcome}
                       for nodeid, outcome in results]}


def _status(counts: dict) -> str:
    if counts["failed"]:
        return "failed"
    return "passed" if counts["passed"] else "skipped" if counts["skipped"] else "none"


def baseline_context(manifest: dict, template: dict | None, comparison) -> dict:
    """This run's metrics against the baseline entry, judged by the function the suites use."""
    if comparison is None:
        return {"available": False, "reason": "no baseline comparison was given", "file": None, "entry": None,
                "changed": [], "thresholds": [], "problem": None, "rows": [], "outside": [], "refusal": None}
    from harness import baselines

    entry = comparison.entry
    try:
        verdicts, problem = (comparison.judge_all(manifest, template) if entry else []), None
        refusals = {scope: comparison.refusal(manifest, scope) for scope in (baselines.MODEL, baselines.RUN)}
    except (KeyError, TypeError, IndexError) as error:
        verdicts, problem = [], f"metrics of this run could not be read: {error!r}"
        refusals = {baselines.MODEL: None, baselines.RUN: None}
    refusal = refusals[baselines.RUN]
    rows = [_baseline_row(verdict, refused=refusals[baselines.scope_of(verdict.name)] is not None)
            for verdict in verdicts]
    return {
        "available": entry is not None,
        "file": comparison.path.name if comparison.path else None,
        "reason": comparison.reason,
        "changed": list(comparison.changed or []),
        "thresholds": sorted((comparison.thresholds or {}).items()),
        "problem": problem,
        "refusal": refusal,
        "entry": {key: entry.get(key) for key in ("version_set", "device", "recorded", "run_key")} if entry else None,
        "rows": rows,
        "outside": [row["name"] for row in rows if row["status"] == "outside"],
    }


# The decision's statuses as the report has always named them.
_ROW_STATUS = {"ok": "ok", "changed": "outside", "not-recorded": "new", "not-measured": "missing"}


def _baseline_row(verdict, refused: bool = False) -> dict:
    from harness import baselines

    current, stored = verdict.current, verdict.baseline
    row = {"name": verdict.name, "current": current, "baseline": stored, "delta": None,
           "tolerance": None if verdict.status == "not-recorded" else (
               verdict.direction if verdict.direction == baselines.EXACT or not verdict.band
               else f"{verdict.direction} {baselines.band_text(verdict.band)}"),
           "status": "refused" if refused and verdict.status in ("ok", "changed") else _ROW_STATUS[verdict.status],
           "text": isinstance(current, str) or isinstance(stored, str)}
    if _is_number(current) and _is_number(stored):
        row["delta"] = current - stored
    return row


# The corpus figures scored against each reference column: key, label, higher is better, digits.
CORPUS_ROWS = (("bleu", "BLEU", True, 2), ("chrf", "chrF", True, 2), ("ter", "TER", False, 2))
# The generation summary's figures: key, label, higher is better (None: neither), digits.
GENERATION_ROWS = (
    ("stop_rate", "stop rate (EOS before max_new_tokens)", True, 3),
    ("non_empty_stop_rate", "non-empty stop rate", True, 3),
    ("empty_rate", "empty output rate", False, 3),
    ("mean_new_tokens", "mean tokens generated", None, 2),
    ("mean_words", "mean output length (words)", None, 2),
)


def quality_rows(columns: Columns, scores: dict) -> list[tuple]:
    """(key, label, reference ("vs_<column>" summary, None: the generation summary), higher, digits),
    the target column's figures first; the second reference's only where the run scored it."""
    references = [(columns.target_key, columns.target)]
    if columns.secondary_key and any(columns.secondary_key in (scores.get(which) or {}) for which in ("base", "tuned")):
        plain = "no interjection" if columns.target == DEFAULT_COLUMNS.target else "second reference"
        references.append((columns.secondary_key, f"{columns.secondary} ({plain})"))
    rows = [(key, f"{label} vs {name}", reference, higher, digits)
            for reference, name in references for key, label, higher, digits in CORPUS_ROWS]
    return rows + [(key, label, None, higher, digits) for key, label, higher, digits in GENERATION_ROWS]


def _headline(columns: Columns) -> set[tuple[str, str | None]]:
    """The quality rows repeated at the top of the page."""
    return {("bleu", columns.target_key), ("chrf", columns.target_key), ("non_empty_stop_rate", None)}


def _score(summary: dict, key: str, reference: str | None) -> float | None:
    holder = (summary.get(reference) or {}) if reference else summary
    value = holder.get(key)
    return value if _is_number(value) else None


def quality_context(scores: dict, columns: Columns = DEFAULT_COLUMNS) -> dict:
    """Tuned vs base on every corpus figure the run scored, with sacrebleu's signatures.

    `columns` are the run's (`Columns.of_run`): its scores are recorded under its reference columns."""
    base, tuned = scores.get("base") or {}, scores.get("tuned") or {}
    rows = []
    for key, label, reference, higher, digits in quality_rows(columns, scores):
        b, t = _score(base, key, reference), _score(tuned, key, reference)
        delta = t - b if b is not None and t is not None else None
        verdict = None
        if delta is not None and higher is not None and abs(delta) > 1e-12:
            verdict = "better" if (delta > 0) == higher else "worse"
        rows.append({"key": key, "reference": reference, "label": label, "base": b, "tuned": t, "delta": delta,
                     "verdict": verdict, "digits": digits, "rate": key.endswith("_rate")})
    headline = _headline(columns)
    return {"rows": rows, "headline": [row for row in rows if (row["key"], row["reference"]) in headline],
            "signatures": _signatures(base, tuned, columns), "eval_rows": scores.get("eval_rows"),
            "reference_mean_words": scores.get("reference_mean_words"), "target": columns.target}


def _signatures(base: dict, tuned: dict, columns: Columns) -> list[dict]:
    """Each metric's sacrebleu signature, once, with the scores it was recorded for."""
    found: dict[tuple[str, str], list[str]] = {}
    scored: dict[str, int] = {}
    references = [key for key in (columns.target_key, columns.secondary_key) if key]
    for which, summary in (("base", base), ("tuned", tuned)):
        for reference in references:
            for metric, signature in ((summary.get(reference) or {}).get("signatures") or {}).items():
                found.setdefault((metric, str(signature)), []).append(f"{which} vs {reference.removeprefix('vs_')}")
                scored[metric] = scored.get(metric, 0) + 1
    return [{"metric": metric, "signature": signature,
             "where": "every score" if len(where) == scored[metric] else ", ".join(where)}
            for (metric, signature), where in sorted(found.items())]


# ------------------------------------------------------------------ per-sentence table
def sentences_context(manifest: dict, generations: dict) -> dict:
    base, tuned = generations["base"] or [], generations["tuned"] or []
    rows = sentence_rows(manifest, base, tuned)
    worst = _mark_worst(rows)
    return {"rows": rows, "worst": worst, "eval_rows": (manifest.get("data") or {}).get("eval_rows"),
            "note": _sentence_note(generations)}


def sentence_rows(manifest: dict, base: list[dict], tuned: list[dict]) -> list[dict]:
    """One row per evaluation sentence: source, references, both outputs, sentence BLEU, stop, tokens."""
    scores = manifest.get("metrics") or {}
    base_bleu = (scores.get("base") or {}).get("sentence_bleu") or []
    tuned_bleu = (scores.get("tuned") or {}).get("sentence_bleu") or []
    rows = []
    for i in range(max(len(base), len(tuned))):
        b, t = _at(base, i) or {}, _at(tuned, i) or {}
        bb, tb = _at(base_bleu, i), _at(tuned_bleu, i)
        bb, tb = (bb if _is_number(bb) else None), (tb if _is_number(tb) else None)
        rows.append({
            "index": i + 1,
            "source": t.get("source", b.get("source")),
            "reference": t.get("reference", b.get("reference")),
            "reference_plain": t.get("reference_plain", b.get("reference_plain")),
            "base": _output(b), "tuned": _output(t),
            "base_bleu": bb, "tuned_bleu": tb,
            "delta": tb - bb if tb is not None and bb is not None else None,
            "mismatch": bool(b and t and b.get("source") != t.get("source")),
            "worst": False,
        })
    return rows


def _at(items: list, index: int):
    return items[index] if index < len(items) else None


def _mark_worst(rows: list[dict]) -> int:
    """Flag the lowest tuned sentence BLEU (ties: the biggest loss against the base model)."""
    scored = [row for row in rows if row["tuned_bleu"] is not None]
    if not scored:
        return 0
    count = min(WORST_MAX, max(1, math.ceil(WORST_SHARE * len(scored))))
    ranked = sorted(scored, key=lambda r: (r["tuned_bleu"], r["delta"] if r["delta"] is not None else 0.0, r["index"]))
    for row in ranked[:count]:
        row["worst"] = True
    return count


def _output(generation: dict) -> dict:
    if not generation:
        return {"text": None, "text_segments": [], "stop": None, "tokens": None, "raw_segments": []}
    text, raw = generation.get("text"), generation.get("raw")
    return {
        "text": text,
        "text_segments": special_segments(text),
        "stop": generation.get("stop_reason"),
        "tokens": generation.get("new_tokens"),
        # What the model emitted with its special tokens, when it differs from the text scored.
        "raw_segments": special_segments(_clip(raw, 600)) if raw and raw != text else [],
    }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def _sentence_note(generations: dict) -> str | None:
    missing = [f"generations_{which}.jsonl" for which, rows in generations.items() if rows is None]
    if missing:
        return "not recorded in this run directory: " + ", ".join(missing)
    if len(generations["base"]) != len(generations["tuned"]):
        return (f"base and tuned generations differ in length ({len(generations['base'])} vs "
                f"{len(generations['tuned'])}); rows are paired by position")
    return None


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
              if isinstance(p, dict) and _is_number(p.get("step")) and _is_number(p.get("loss"))]
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
                   if len(dtypes) == 1 and dtypes[0] in DTYPE_BYTES and _is_number(adapter_params) else None)
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
        "trainable_share": trainable / total if _is_number(trainable) and _is_number(total) and total else None,
        "peak_gpu": training.get("peak_gpu_allocated_bytes"),
        "peak_rss": training.get("peak_rss_bytes"),
        "unquantized": sorted((structure.get("unquantized_modules") or {}).items()),
        "target_modules": structure.get("target_modules") or [],
        "adapter_files": adapter.get("files") or [],
        "adapter_bytes": adapter.get("safetensors_bytes"),
    }


def _measured_row(label: str, unit: str, measured: Any, predicted: Any) -> dict:
    both = _is_number(measured) and _is_number(predicted)
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
    return round(value / MB, 2) if _is_number(value) else None


def in_run_order(phases: dict) -> dict:
    rank = {name: i for i, name in enumerate(PHASE_ORDER)}
    return dict(sorted(phases.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def phases_context(phases: dict) -> dict:
    phases = in_run_order(phases)
    total = sum(v for v in phases.values() if _is_number(v))
    return {"rows": [{"name": name, "seconds": seconds,
                      "share": seconds / total if total and _is_number(seconds) else None}
                     for name, seconds in phases.items()],
            "total": total}


# ------------------------------------------------------------------ chat template
def special_segments(text: str | None, specials: set[str] | frozenset = frozenset()) -> list[dict]:
    """`text` cut into plain and special-token pieces; a newline becomes its own piece (shown as ↵)."""
    if not text:
        return []
    known = "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True) if s)
    pattern = re.compile(f"({known + '|' if known else ''}{_SPECIAL.pattern})")
    segments = []
    for i, piece in enumerate(pattern.split(text)):
        if i % 2 == 1:
            segments.append({"kind": "special", "text": piece})
            continue
        lines = piece.split("\n")
        for j, line in enumerate(lines):
            if line:
                segments.append({"kind": "text", "text": line})
            if j < len(lines) - 1:
                segments.append({"kind": "newline", "text": "\n"})
    return segments


def template_context(template: dict | None, tokens: dict) -> dict | None:
    """The rendered training example and generation prompt, token by token, special tokens marked."""
    if template is None:
        return None
    specials = {t for t in (tokens.get("eos"), tokens.get("pad"), tokens.get("end_of_turn"),
                            *(tokens.get("role_markers") or [])) if t}
    ids = template.get("token_ids") or []
    chips = [_token_chip(str(token), _at(ids, i), specials) for i, token in enumerate(template.get("tokens") or [])]
    return {
        "messages": (template.get("example") or {}).get("messages") or [],
        "rendered": special_segments(template.get("rendered"), specials),
        "generation_prompt": special_segments(template.get("generation_prompt"), specials),
        "chips": chips,
        "chat_template": template.get("chat_template"),
        "tokens": {
            "as_shipped": tokens.get("as_shipped") or {},
            "as_read": tokens.get("as_read") or {},
            "corrections": tokens.get("corrections") or [],
            "pad": tokens.get("pad"), "pad_id": tokens.get("pad_id"),
            "eos": tokens.get("eos"), "eos_id": tokens.get("eos_id"),
            "end_of_turn": tokens.get("end_of_turn"), "role_markers": tokens.get("role_markers") or [],
        },
    }


def _token_chip(token: str, token_id: Any, specials: set[str]) -> dict:
    is_byte = token.startswith("<0x") and bool(_SPECIAL.fullmatch(token))
    is_special = token in specials or (bool(_SPECIAL.fullmatch(token)) and not is_byte)
    return {"text": token, "id": token_id, "special": is_special, "byte": is_byte}


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
