"""The report's figures (the Figures section, and the phase bars of the Training section):
matplotlib (Agg) drawn to SVG text that is inlined in the HTML.

The labels are the harness's own wording (and the recipe's phase names); the run data are numbers.
matplotlib escapes every text it writes into the SVG, so the SVG is inlined as it is. Each figure
gets its own `svg.hashsalt`, so the element ids matplotlib generates (clip paths, markers) never
collide between figures of one page.
"""

from __future__ import annotations

import io
import re

from markupsafe import Markup

from harness.checks.report.formatting import is_number
from harness.checks.report.training import in_run_order
from harness.recipe.record import to_json

BASE_COLOR = "#8c8c8c"
TUNED_COLOR = "#2b6cb0"
BASELINE_COLOR = "#c05621"

_SVG_START = re.compile(r"<svg\b")


def figures_context(record, sentences: list[dict], comparison) -> dict:
    """Each figure as inline SVG markup (None where there is nothing to draw), from the run's rows."""
    history = to_json(record.training.loss_history) if record.trained else []
    baseline_history = _baseline_history(comparison)
    base = [row["base_bleu"] for row in sentences if row["base_bleu"] is not None]
    tuned = [row["tuned_bleu"] for row in sentences if row["tuned_bleu"] is not None]
    return {
        "loss": _svg(loss_curve(history, baseline_history)),
        "loss_has_baseline": bool(baseline_history),
        "loss_points": len(history),
        "bleu": _svg(bleu_histogram(base, tuned)),
        "phases": _svg(phase_bars(in_run_order(record.phase_seconds))),
    }


def _svg(text: str | None) -> Markup | None:
    # Markup: inlined unescaped, which is safe because matplotlib escapes every text it writes.
    return Markup(text) if text else None


def _baseline_history(comparison) -> list[dict] | None:
    """The baseline entry's loss curve, in the record's shape [{"step", "loss"}], where it stores one."""
    entry = getattr(comparison, "entry", None) or {}
    points = [p for p in entry.get("loss_history") or []
              if isinstance(p, dict) and is_number(p.get("step")) and is_number(p.get("loss"))]
    return points or None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _to_svg(fig, salt: str) -> str:
    import matplotlib

    plt = _pyplot()
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"yoda-report-{salt}", "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    match = _SVG_START.search(text)  # drop the XML declaration and DOCTYPE: not valid inside HTML
    svg = text[match.start():] if match else text
    # Scale with the page: keep the viewBox, let CSS set the width.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', svg, count=1)
    return svg.replace("<svg", f'<svg role="img" aria-label="{salt}" class="figure"', 1)


def _style(ax) -> None:
    ax.grid(True, color="#e2e8f0", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def loss_curve(history: list[dict], baseline: list[dict] | None = None) -> str | None:
    """Training loss by step, with the baseline's curve when one was recorded; None if nothing was logged."""
    if not history and not baseline:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    if history:
        ax.plot([p["step"] for p in history], [p["loss"] for p in history], marker="o", markersize=4,
                color=TUNED_COLOR, label="this run")
    if baseline:
        ax.plot([p["step"] for p in baseline], [p["loss"] for p in baseline], marker="s", markersize=3,
                linestyle="--", color=BASELINE_COLOR, label="baseline")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(frameon=False)
    _style(ax)
    return _to_svg(fig, "training loss curve")


def bleu_histogram(base: list[float], tuned: list[float]) -> str | None:
    """Sentence-BLEU distribution, base vs tuned, in 10-point bins."""
    if not base and not tuned:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    bins = [10 * i for i in range(11)]
    ax.hist([base, tuned], bins=bins, label=[f"base (n={len(base)})", f"tuned (n={len(tuned)})"],
            color=[BASE_COLOR, TUNED_COLOR], rwidth=0.85)
    ax.set_xlim(0, 100)
    ax.set_xticks(bins)
    ax.set_xlabel("sentence BLEU")
    ax.set_ylabel("sentences")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(frameon=False)
    _style(ax)
    return _to_svg(fig, "sentence BLEU histogram")


def phase_bars(phases: dict[str, float]) -> str | None:
    """Wall time of each recipe phase, in the order given."""
    if not phases:
        return None
    plt = _pyplot()
    names = list(phases)
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(names) + 0.8))
    ax.barh(range(len(names)), [phases[n] for n in names], color=TUNED_COLOR)
    ax.set_yticks(range(len(names)), [str(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    _style(ax)
    return _to_svg(fig, "phase timings")
