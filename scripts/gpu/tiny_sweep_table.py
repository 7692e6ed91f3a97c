"""The tiny seed sweep's table, from its JUnit files and the runs' manifests (scripts/gpu/g_tiny_sweep.sh).

    python3 scripts/gpu/tiny_sweep_table.py SWEEP_DIR

The runs' caches are read from /tmp/yh-sweep-NAME/runs (the GPU scripts' layout), or from
$SWEEP_CACHES with {name} in it for a sweep laid out elsewhere.

One row per run: the invariant checks that failed (BROKEN), how many comparisons failed (CHANGED:
expected, since a changed seed is a changed config and its comparisons are refused), and what the
model learned: stop rate, leaks, BLEU gain, loss first -> last.
"""

import json
import os
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

CACHES = os.environ.get("SWEEP_CACHES", "/tmp/yh-sweep-{name}/runs")


def learned(name: str) -> str:
    """stop rate, leaks are the checks' business; here: non-empty stop rate, BLEU tuned/base, loss."""
    for manifest_path in sorted(Path(CACHES.format(name=name)).glob("*/run.json")):
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("stage") != "trained":
            continue
        tuned, base = manifest["metrics"]["tuned"], manifest["metrics"]["base"]
        losses = [point["loss"] for point in manifest["training"]["loss_history"]]
        return (f"{tuned['non_empty_stop_rate']:.0%} | {tuned['vs_translation_extra']['bleu']:.2f} / "
                f"{base['vs_translation_extra']['bleu']:.2f} | {tuned['mean_words']:.1f} | "
                f"{losses[0]:.2f} -> {losses[-1]:.2f}")
    return "no trained run | | |"


def row(junit: Path) -> str:
    broken, changed, passed = [], 0, 0
    for case in ElementTree.parse(junit).iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is None:
            passed += case.find("skipped") is None
            continue
        if properties.get("check_kind") == "comparison":
            changed += 1
        else:
            broken.append(case.get("name"))
    log = junit.with_suffix(".log").read_text(errors="replace")
    summary = next((line for line in reversed(log.splitlines()) if " passed" in line or " failed" in line), "")
    return (f"| {junit.stem} | {passed} | {', '.join(broken) or 'none'} | {changed} | {learned(junit.stem)} | "
            f"{summary.strip('= ')} |")


def main(directory: str) -> None:
    print("| run | passed | invariants failed (BROKEN) | comparisons failed (CHANGED) | non-empty stops | "
          "BLEU tuned / base | words | loss first -> last | pytest |")
    print("|---|---|---|---|---|---|---|---|---|")
    for junit in sorted(Path(directory).glob("*.xml")):
        print(row(junit))


if __name__ == "__main__":
    main(sys.argv[1])
