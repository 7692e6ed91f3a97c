"""The "Translation quality" section (and the headline cards at the top): tuned vs base on every corpus figure."""

from __future__ import annotations

from harness.report.formatting import is_number

QUALITY_ROWS = (
    # key, label, reference ("vs_..." summary, None: the generation summary), higher is better, digits
    ("bleu", "BLEU vs translation_extra", "vs_translation_extra", True, 2),
    ("chrf", "chrF vs translation_extra", "vs_translation_extra", True, 2),
    ("ter", "TER vs translation_extra", "vs_translation_extra", False, 2),
    ("bleu", "BLEU vs translation (no interjection)", "vs_translation", True, 2),
    ("chrf", "chrF vs translation (no interjection)", "vs_translation", True, 2),
    ("ter", "TER vs translation (no interjection)", "vs_translation", False, 2),
    ("stop_rate", "stop rate (EOS before max_new_tokens)", None, True, 3),
    ("non_empty_stop_rate", "non-empty stop rate", None, True, 3),
    ("empty_rate", "empty output rate", None, False, 3),
    ("mean_new_tokens", "mean tokens generated", None, None, 2),
    ("mean_words", "mean output length (words)", None, None, 2),
)


# The quality rows repeated at the top of the page.
HEADLINE = {("bleu", "vs_translation_extra"), ("chrf", "vs_translation_extra"), ("non_empty_stop_rate", None)}


def quality_context(scores: dict) -> dict:
    """Tuned vs base on every corpus figure the run scored, with sacrebleu's signatures."""
    base, tuned = scores.get("base") or {}, scores.get("tuned") or {}
    rows = [_quality_row(base, tuned, *spec) for spec in QUALITY_ROWS]
    return {"rows": rows, "headline": [row for row in rows if (row["key"], row["reference"]) in HEADLINE],
            "signatures": _signatures(base, tuned), "eval_rows": scores.get("eval_rows"),
            "reference_mean_words": scores.get("reference_mean_words")}


def _quality_row(base: dict, tuned: dict, key: str, label: str, reference: str | None, higher: bool | None,
                 digits: int) -> dict:
    b, t = _score(base, key, reference), _score(tuned, key, reference)
    delta = t - b if b is not None and t is not None else None
    return {"key": key, "reference": reference, "label": label, "base": b, "tuned": t, "delta": delta,
            "verdict": _verdict(delta, higher), "digits": digits, "rate": key.endswith("_rate")}


def _verdict(delta: float | None, higher: bool | None) -> str | None:
    """"better" or "worse" for a figure with a good direction that moved (beyond float noise), else None."""
    if delta is None or higher is None or abs(delta) <= 1e-12:
        return None
    return "better" if (delta > 0) == higher else "worse"


def _score(summary: dict, key: str, reference: str | None) -> float | None:
    holder = (summary.get(reference) or {}) if reference else summary
    value = holder.get(key)
    return value if is_number(value) else None


def _signatures(base: dict, tuned: dict) -> list[dict]:
    """Each metric's sacrebleu signature, once, with the scores it was recorded for."""
    found: dict[tuple[str, str], list[str]] = {}
    scored: dict[str, int] = {}
    for which, summary in (("base", base), ("tuned", tuned)):
        for reference in ("vs_translation_extra", "vs_translation"):
            for metric, signature in ((summary.get(reference) or {}).get("signatures") or {}).items():
                found.setdefault((metric, str(signature)), []).append(f"{which} vs {reference.removeprefix('vs_')}")
                scored[metric] = scored.get(metric, 0) + 1
    return [{"metric": metric, "signature": signature,
             "where": "every score" if len(where) == scored[metric] else ", ".join(where)}
            for (metric, signature), where in sorted(found.items())]
