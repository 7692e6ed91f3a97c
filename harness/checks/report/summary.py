"""The top of the page: the notices to read before any number, and the suites' outcomes (the verdict badge,
the suite strip and the Suites section)."""

from __future__ import annotations


def notices(record) -> list[str]:
    """What a reader must know before reading any number: random weights, profile skips."""
    found = []
    if record.profile_kind == "structural":
        found.append(f"{record.profile} is a structural profile with random weights: its quality figures "
                     "(BLEU, chrF, TER, stop rate, output length, sentence scores) and its loss mean nothing. "
                     "Read it for memory, parameters, labels and the chat template.")
    for marker, reason in sorted(record.skips.items()):
        found.append(f"The {marker} checks skip on this profile: {reason}")
    return found


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
