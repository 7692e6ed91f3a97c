"""The "Per sentence" section: each evaluation sentence with both models' outputs, the worst highlighted."""

from __future__ import annotations

import math

from harness.checks.report.chat_template import special_segments
from harness.checks.report.formatting import is_number, item_at

# How many sentences are highlighted as the worst: a fifth of them, at least one, at most five.
WORST_SHARE, WORST_MAX = 0.2, 5

# Longest raw output shown: a model that never stops would otherwise fill the page.
RAW_LIMIT = 600


def sentences_context(record, generations: dict) -> dict:
    base, tuned = generations["base"] or [], generations["tuned"] or []
    rows = sentence_rows(record, base, tuned)
    worst = _mark_worst(rows)
    return {"rows": rows, "worst": worst, "eval_rows": record.data.eval_rows, "note": _sentence_note(generations)}


def sentence_rows(record, base: list[dict], tuned: list[dict]) -> list[dict]:
    """One row per evaluation sentence: source, references, both outputs, sentence BLEU, stop, tokens."""
    base_bleu = record.metrics.base.sentence_bleu if record.trained else []
    tuned_bleu = record.metrics.tuned.sentence_bleu if record.trained else []
    # Paired by position: the longer side sets the row count, the shorter leaves its cells empty.
    return [_sentence_row(i, item_at(base, i) or {}, item_at(tuned, i) or {},
                          _bleu_at(base_bleu, i), _bleu_at(tuned_bleu, i))
            for i in range(max(len(base), len(tuned)))]


def _sentence_row(i: int, b: dict, t: dict, bb: float | None, tb: float | None) -> dict:
    return {
        "index": i + 1,
        "source": t.get("source", b.get("source")),
        "reference": t.get("reference", b.get("reference")),
        "reference_plain": t.get("reference_plain", b.get("reference_plain")),
        "base": _output(b), "tuned": _output(t),
        "base_bleu": bb, "tuned_bleu": tb,
        "delta": tb - bb if tb is not None and bb is not None else None,
        "mismatch": bool(b and t and b.get("source") != t.get("source")),
        "worst": False,
    }


def _bleu_at(scores: list, index: int) -> float | None:
    """The sentence's BLEU; None where it was not recorded or is not a number."""
    value = item_at(scores, index)
    return value if is_number(value) else None


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
        "raw_segments": special_segments(_clip(raw, RAW_LIMIT)) if raw and raw != text else [],
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
