"""The "Translation quality" section (and the headline cards at the top): tuned vs base on every corpus figure."""

from __future__ import annotations

from harness.checks.report.formatting import is_number
from harness.recipe.data import DEFAULT_COLUMNS, Columns
from harness.recipe.record import GenerationScores, Metrics

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


def quality_rows(columns: Columns, *summaries: GenerationScores | None) -> list[tuple]:
    """(key, label, reference ("vs_<column>" summary, None: the generation summary), higher, digits),
    the target column's figures first; the second reference's only where the run scored it."""
    references = [(columns.target_key, columns.target)]
    if columns.secondary_key and any(summary and columns.secondary_key in summary.versus for summary in summaries):
        plain = "no interjection" if columns.target == DEFAULT_COLUMNS.target else "second reference"
        references.append((columns.secondary_key, f"{columns.secondary} ({plain})"))
    rows = [(key, f"{label} vs {name}", reference, higher, digits)
            for reference, name in references for key, label, higher, digits in CORPUS_ROWS]
    return rows + [(key, label, None, higher, digits) for key, label, higher, digits in GENERATION_ROWS]


def _headline(columns: Columns) -> set[tuple[str, str | None]]:
    """The quality rows repeated at the top of the page."""
    return {("bleu", columns.target_key), ("chrf", columns.target_key), ("non_empty_stop_rate", None)}


def quality_context(scores: Metrics | None, columns: Columns = DEFAULT_COLUMNS) -> dict:
    """Tuned vs base on every corpus figure the run scored (None: a run that scored nothing), with
    sacrebleu's signatures.

    `columns` are the run's (`record.columns`): its scores are recorded under its reference columns."""
    base, tuned = (scores.base, scores.tuned) if scores else (None, None)
    rows = [_quality_row(base, tuned, *spec) for spec in quality_rows(columns, base, tuned)]
    headline = _headline(columns)
    return {"rows": rows, "headline": [row for row in rows if (row["key"], row["reference"]) in headline],
            "signatures": _signatures(base, tuned, columns), "eval_rows": scores.eval_rows if scores else None,
            "reference_mean_words": scores.reference_mean_words if scores else None, "target": columns.target}


def _quality_row(base: GenerationScores | None, tuned: GenerationScores | None, key: str, label: str,
                 reference: str | None, higher: bool | None,
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


def _score(summary: GenerationScores | None, key: str, reference: str | None) -> float | None:
    """The figure `key` (a field of the summary, or of its scores against `reference`), where scored."""
    holder = summary.versus.get(reference) if summary and reference else summary
    value = getattr(holder, key, None)
    return value if is_number(value) else None


def _signatures(base: GenerationScores | None, tuned: GenerationScores | None, columns: Columns) -> list[dict]:
    """Each metric's sacrebleu signature, once, with the scores it was recorded for."""
    found: dict[tuple[str, str], list[str]] = {}
    scored: dict[str, int] = {}
    references = [key for key in (columns.target_key, columns.secondary_key) if key]
    for which, summary in (("base", base), ("tuned", tuned)):
        for reference in references:
            scored_against = summary.versus.get(reference) if summary else None
            for metric, signature in scored_against.signatures.by_metric().items() if scored_against else ():
                found.setdefault((metric, str(signature)), []).append(f"{which} vs {reference.removeprefix('vs_')}")
                scored[metric] = scored.get(metric, 0) + 1
    return [{"metric": metric, "signature": signature,
             "where": "every score" if len(where) == scored[metric] else ", ".join(where)}
            for (metric, signature), where in sorted(found.items())]
