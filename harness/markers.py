"""The harness's pytest markers: namespaced, so a repo's own `slow`, `gpu` or `quality` markers mean
what that repo says and the harness acts on none of them.

A profile's `[skips]` table names check *categories* (`quality`, `learning`); each has its marker.
"""

from __future__ import annotations

STRUCTURAL = "yoda_structural"
GPU = "yoda_gpu"
SLOW = "yoda_slow"
QUALITY = "yoda_quality"
LEARNING = "yoda_learning"
COMPARISON = "yoda_comparison"
# What a check's failure means in the recipe's words, and the recipe settings it is about: kept with
# the check, so renaming it keeps its headline (the history table and the result JSON show it).
CHECK = "yoda_check"

# profile [skips] key -> the marker of the checks it skips
SKIPPABLE = {"quality": QUALITY, "learning": LEARNING}

DESCRIPTIONS = {
    GPU: "needs a CUDA GPU; skipped with the reason on a CPU",
    SLOW: "runs the recipe or other long work",
    QUALITY: "needs a model that learned the task (BLEU, stopping); skipped with the profile's reason on "
             "profiles that cannot",
    LEARNING: "reads the training loss; skipped with the profile's reason on random-weight structural runs",
    STRUCTURAL: "needs only the prepared stage (everything before the first optimizer step); "
                f"`-m {STRUCTURAL}` trains nothing, and these run first otherwise",
    COMPARISON: "compares with the baseline entry; its failure is CHANGED (every other harness check is an "
                "invariant: its failure is BROKEN)",
    CHECK: "yoda_check(headline=..., settings=(...), detail_after=...): what the check's failure means in the "
           "recipe's words, the recipe settings it is about (a library warning naming one preceded the break), and "
           "the text of its message after `detail_after` that the headline carries (the token misread)",
}


def register(config) -> None:
    for name, description in DESCRIPTIONS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def check_facts(node) -> dict | None:
    """The `yoda_check` marker's headline, settings and detail marker of a test item, else None."""
    mark = node.get_closest_marker(CHECK)
    if mark is None:
        return None
    return {"headline": mark.kwargs["headline"], "settings": list(mark.kwargs.get("settings", ())),
            "detail_after": mark.kwargs.get("detail_after", "")}
