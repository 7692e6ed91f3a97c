"""The recipe's real history: run a (version set x recipe variant) trial in an environment that
holds the set, and write its matrix result.

Building a virtual environment per set costs minutes (torch alone is large); the history sets
differ mostly in trl, a small pure-Python wheel. So a trial may run in a *base* environment
(transformers, peft, accelerate, bitsandbytes, datasets, hub, torch already installed) into which
`swap_into` installs, with `--no-deps`, the few packages the set pins differently: only packages
in `SWAPPABLE`; any other difference is an error that says to build an environment for the set
(nox does). After a swap, the swapped release's own requirements are checked against the
environment: one it does not meet (transformers 5.15 wants tokenizers <= 0.23.0) makes the set
`cannot-run` with that reason, never a verdict on the release. Every swap is recorded in the result.

    python -m harness history --python BASE/bin/python --set trl-0.15.0 --variant 2024
    python -m harness history --python BASE/bin/python --set transformers-5.17.0 --variant 2025-10

A set may name its profile (versions.toml `profile = "smollm2"`): its trials run on that profile's
prepared stage, which runs on a CPU for the real SmolLM2 (docs/history.md).

The checks a trial runs are a parameter (`DEFAULT_CHECKS`: the structural checks but the slow
property search, which read only the prepared stage: the trainer, its first batch, the template and the tokens, not what the model
learned, so a trial trains nothing), and so are its overrides (`DEFAULT_OVERRIDES`, none).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

from harness.versions import matrix, runner

# The checks that speak before the first optimizer step: the prepared stage only, nothing trains.
# Not the slow hypothesis search over collations (minutes a trial); it passes on every release from
# trl 0.12.1 on, with what each release's packing adds and drops modelled (harness.recipe.compat.Packing).
DEFAULT_CHECKS = ("suites", "-m", "yoda_structural and not yoda_slow")
DEFAULT_OVERRIDES: tuple[str, ...] = ()
# Pure-Python packages a base environment may swap in place, with --no-deps (then their own
# requirements are checked: `unmet_requirements`).
SWAPPABLE = frozenset({"trl", "peft", "accelerate", "transformers"})

# Run by the environment's python: the requirements of distribution argv[1] that the environment
# does not meet (extras ignored), as a JSON list of 'name spec (installed: V)'.
UNMET_SCRIPT = r"""
import json, sys
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
unmet = []
for text in metadata.requires(sys.argv[1]) or []:
    requirement = Requirement(text)
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        continue
    try:
        installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        unmet.append(f"{canonicalize_name(requirement.name)}{requirement.specifier} (absent)")
        continue
    if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
        unmet.append(f"{canonicalize_name(requirement.name)}{requirement.specifier} (installed: {installed})")
print(json.dumps(unmet))
"""


def unmet_requirements(python: str, name: str) -> list[str]:
    """What the installed release of `name` requires that the environment of `python` lacks."""
    completed = subprocess.run([python, "-c", UNMET_SCRIPT, name], capture_output=True, text=True)
    if completed.returncode != 0:
        return [f"could not read {name}'s requirements: {completed.stderr.strip()[-300:]}"]
    return json.loads(completed.stdout.strip().splitlines()[-1])


class SwapError(RuntimeError):
    """The environment cannot hold the set by swapping small packages; the message says why."""


def installed_versions(python: str) -> dict[str, str]:
    listing = subprocess.run([python, "-c", matrix.VERSIONS_SCRIPT], capture_output=True, text=True, check=True)
    return json.loads(listing.stdout.strip().splitlines()[-1])


def swap_into(python: str, version_set: matrix.VersionSet, find_links: Iterable[str] = (),
              log=print) -> list[str]:
    """Make the environment of `python` hold the set's exact pins; the swaps made ('trl 0.14.0 -> 0.15.0')."""
    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(k): v for k, v in installed_versions(python).items()}
    wanted = {name: version for name, version in version_set.pinned().items() if name != "torch"}
    unpinned = sorted(name for name, version in wanted.items() if version is None)
    if unpinned:
        raise SwapError(f"set {version_set.name!r} leaves {', '.join(unpinned)} unpinned: a swap needs exact pins")
    differing = {name: version for name, version in wanted.items() if installed.get(name) != version}
    fixed = sorted(set(differing) - SWAPPABLE)
    if fixed:
        details = ", ".join(f"{name} {installed.get(name) or 'absent'} (set: {differing[name]})" for name in fixed)
        raise SwapError(f"set {version_set.name!r}: this environment differs in {details}, which are not swapped in "
                        f"place (only {', '.join(sorted(SWAPPABLE))}); build an environment for the set (nox)")
    swaps = []
    for name, version in sorted(differing.items()):
        command = [python, "-m", "pip", "install", "-q", "--no-deps", f"{name}=={version}"]
        for link in find_links:
            command += ["--find-links", str(link)]
        log(f"swap: {name} {installed.get(name) or 'absent'} -> {version}")
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise SwapError(f"pip could not install {name}=={version}: {completed.stderr.strip()[-500:]}")
        swaps.append(f"{name} {installed.get(name) or 'absent'} -> {version}")
        unmet = unmet_requirements(python, name)
        if unmet:
            raise SwapError(f"{name} {version} requires {', '.join(unmet)}: this environment cannot hold set "
                            f"{version_set.name!r} by swapping; build an environment for it (nox)")
    return swaps


def run_trial(python: str, version_set: matrix.VersionSet, variant: str, results_dir: Path, cache_dir: Path,
              checks: Iterable[str] = DEFAULT_CHECKS, overrides: Iterable[str] = DEFAULT_OVERRIDES,
              profile: str = "tiny", project_root: Path = Path("."), find_links: Iterable[str] = (),
              swap: bool = True, log=print) -> dict:
    """Swap the set in, probe the device, run the checks with `--variant`; write and return the result."""
    from harness.recipe import variants

    variants.get(variant)  # an unknown variant is an error before anything is installed
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = result_stem(version_set.name, variant)
    session_path, log_path = results_dir / f"{stem}.session.json", results_dir / f"{stem}.pytest.log"
    for stale in (session_path, log_path):
        stale.unlink(missing_ok=True)
    started = time.monotonic()
    facts: dict = {}
    timing: dict = {}
    swaps: list[str] = []
    try:
        if swap:
            swaps = swap_into(python, version_set, find_links, log)
        timing["install_s"] = round(time.monotonic() - started, 1)
        facts["installed"] = installed_versions(python)
        facts["probe"] = _probe(python, results_dir / f".{stem}.probe.json")
        timing["probe_s"] = round(time.monotonic() - started - timing["install_s"], 1)
        run_started = time.monotonic()
        session = runner.run_suites(python, runner.suite_args(checks, profile, cache_dir, variant=variant,
                                                              overrides=overrides, extra=["-q"]),
                                    result_path=session_path, log_path=log_path, cwd=project_root,
                                    env=runner.cache_environment(cache_dir))
        timing["checks_s"] = round(time.monotonic() - run_started, 1)
        facts["session"] = session
        timing["recipe_run"] = session.run.state if session.run else None
    except SwapError as error:
        facts["install_error"] = str(error)
    result = matrix.build_result(version_set=version_set, profile=profile, cache_dir=cache_dir,
                                 duration_s=time.monotonic() - started,
                                 extra={"variant": variant, "check_selection": list(checks), "overrides": list(overrides),
                                        "swaps": swaps, "timing": timing, "pytest_log": str(log_path),
                                        "session_result": str(session_path)},
                                 **facts)
    matrix.write_result(results_dir / f"{stem}.json", result)
    log(f"{version_set.name} x {variant}: {result['status']} — {result['reason']} "
        f"({result['duration_s']} s)")
    return result


def result_stem(set_name: str, variant: str) -> str:
    return f"{set_name}--{variant}"


def _probe(python: str, probe_file: Path) -> dict:
    probe_file.unlink(missing_ok=True)
    subprocess.run([python, "-c", matrix.PROBE_SCRIPT, str(probe_file)], capture_output=True)
    try:
        return json.loads(probe_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"ok": False, "error": "the probe process died without a result (crash?)"}
    finally:
        probe_file.unlink(missing_ok=True)


def trial_profile(explicit: str | None, version_set: matrix.VersionSet) -> str:
    """The profile a trial runs: the one named on the command line, else the set's, else the default."""
    return explicit or version_set.profile or os.environ.get("YODA_HARNESS_PROFILE") or "tiny"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness history", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="the environment's python (default: this one)")
    parser.add_argument("--set", dest="sets", action="append", required=True, metavar="SET",
                        help="version set from versions.toml (repeatable)")
    parser.add_argument("--variant", dest="variants", action="append", metavar="NAME",
                        help="recipe variant (repeatable; default: every variant)")
    parser.add_argument("--profile", default=None,
                        help="profile of every trial (default: each set's versions.toml `profile`, else "
                             "$YODA_HARNESS_PROFILE, else tiny)")
    parser.add_argument("--results-dir", default="reports/history")
    parser.add_argument("--cache-dir", default=None, help="harness cache for the runs (default: RESULTS_DIR-cache)")
    parser.add_argument("--versions", default=matrix.VERSIONS_FILE)
    parser.add_argument("--find-links", action="append", default=[], metavar="DIR",
                        help="local wheels for the swapped packages (pip --find-links)")
    parser.add_argument("--no-swap", action="store_true", help="run in the environment as it is")
    parser.add_argument("--check", dest="checks", action="append", metavar="ARG",
                        help="pytest arguments selecting the checks (repeatable; default: the structural suites)")
    parser.add_argument("--override", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="recipe overrides (repeatable; default: a short training)")
    args = parser.parse_args(argv)
    from harness.recipe import variants

    sets = matrix.load_version_sets(args.versions)
    unknown = [name for name in args.sets if name not in sets]
    if unknown:
        parser.error(f"{args.versions}: no version set {', '.join(map(repr, unknown))}; sets: {', '.join(sets)}")
    results_dir = Path(args.results_dir).resolve()
    # Beside the results, not under them: `harness matrix` reads every JSON below its directory.
    cache_dir = Path(args.cache_dir).resolve() if args.cache_dir else results_dir.with_name(results_dir.name + "-cache")
    failed = 0
    for name in args.sets:
        for variant in args.variants or list(variants.VARIANTS):
            result = run_trial(args.python, sets[name], variant, results_dir, cache_dir,
                               checks=args.checks or DEFAULT_CHECKS, overrides=args.overrides or DEFAULT_OVERRIDES,
                               profile=trial_profile(args.profile, sets[name]), project_root=Path.cwd(),
                               find_links=args.find_links,
                               swap=not args.no_swap)
            failed += result["status"] == "failed"
    return 1 if failed else 0
