"""Record a baseline entry over seeds: one session of the suites per seed, then one entry from their runs.

    python -m harness baselines record [--profile NAME] --seeds N [--baselines-dir D] [--force] [-- PYTEST_ARGS...]

Each seed is a pytest session of the suites in a process of its own, so what one run allocated never
counts in another's peak GPU memory (measured on an H200: a second seed run in the process of the
first peaked at 629.7 MB against 450.3 MB alone). The first session runs the recipe's own seed (the
profile's, or `--yoda-override training.seed=S` among PYTEST_ARGS), the next N-1 the seeds after it
(`--yoda-override training.seed=S+1`, ...). A session whose invariant checks failed (BROKEN) stops
the recording, naming them, as `--yoda-update-baselines` refuses (`--force` records anyway and the
entry lists them); so does a session in which no check ran to a verdict or that left no trained
run. From the seeds' run directories the entry is recorded as `python -m harness baselines update
RUN_DIR...` records it (harness.checks.baselines.update): each metric's mean, spread and band.

PYTEST_ARGS go to every session (`--yoda-override`, `--yoda-variant`, `--yoda-fresh`, `-x`, `-n 2`...).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import env, files
from harness.checks import baselines
from harness.recipe.record import TrainedRun
from harness.run.stages import Run
from harness.run.options import OptionError

# Options this command sets itself, and what to give it instead.
OWN_OPTIONS = {"--yoda-profile": "--profile", "--yoda-baselines-dir": "--baselines-dir",
               "--yoda-update-baselines": "nothing: it records the entry itself",
               "--yoda-force-baselines": "--force"}


class RecordError(Exception):
    """A recording refused: a session whose run must not become the entry (the message says which and why)."""


@dataclass(frozen=True)
class SeedSession:
    """What one session of the suites came to, as the recording reads it."""

    exit_code: int
    run_dir: str | None  # the session's trained run, if it has one
    refusal: str | None  # why its run must not be recorded (harness.checks.plugin's reasons)
    failed_invariants: tuple[str, ...] = ()


def check_pytest_args(pytest_args: list[str]) -> None:
    """The pytest arguments of the sessions: none of those this command sets itself (else OptionError)."""
    for arg in pytest_args:
        option = arg.split("=", 1)[0]
        if option in OWN_OPTIONS:
            raise OptionError(f"{arg}: `baselines record` sets it for every session; give it {OWN_OPTIONS[option]}")


def suites_selection(pytest_args: list[str], root: Path) -> list[str]:
    """The project's suites where the command runs from a checkout, else the installed ones; nothing
    where PYTEST_ARGS select checks themselves (a path, a node id, `--pyargs`)."""
    if "--pyargs" in pytest_args or any(not arg.startswith("-") and (root / arg.split("::")[0]).exists()
                                        for arg in pytest_args):
        return []
    return ["suites"] if (root / "suites").is_dir() else ["--pyargs", "harness.suites"]


def run_session(pytest_args: list[str], force: bool) -> SeedSession:
    """One session of the suites in a process of its own (its output goes to this terminal)."""
    with tempfile.TemporaryDirectory(prefix="yoda-record-") as scratch:
        result = Path(scratch) / "session.json"
        command = [sys.executable, "-m", __name__, str(result), "force" if force else "no-force", *pytest_args]
        code = subprocess.run(command).returncode
        if not result.is_file():  # the process died before pytest finished
            return SeedSession(code, None, f"the session ended with exit status {code} before it finished")
        return SeedSession(**files.read_json(result))


def record(seeds: int, baselines_dir: Path, pytest_args: list[str], *, profile: str | None = None,
           force: bool = False, session: Callable[[list[str], bool], SeedSession] = run_session,
           log: Callable[[str], None] = print) -> tuple[Path, list[str]]:
    """Run the suites once per seed and record one entry from their runs: (the baseline file, old -> new
    lines). A session that must not be recorded raises RecordError, naming why; nothing is written then."""
    check_pytest_args(pytest_args)
    common = [*(["--yoda-profile", profile] if profile else []), "--yoda-baselines-dir", str(baselines_dir),
              *pytest_args]
    runs, broken, first_seed = [], [], None
    for index in range(seeds):
        seed_args = [] if first_seed is None else ["--yoda-override", f"training.seed={first_seed + index}"]
        which = f"seed {first_seed + index}" if first_seed is not None else "the recipe's own seed"
        log(f"yoda-harness: baselines record: session {index + 1} of {seeds} ({which})")
        outcome = session([*suites_selection(pytest_args, Path.cwd()), *common, *seed_args], force)
        why = _refusal(outcome)
        if why:
            raise RecordError(f"not recorded: session {index + 1} ({which}, exit {outcome.exit_code}): {why}")
        run = Run.load(Path(outcome.run_dir))
        seed = run.record.recipe_config.training.seed
        if first_seed is not None and seed != first_seed + index:  # the spread must come from other seeds' runs
            raise RecordError(f"not recorded: session {index + 1} asked for {which} and its run {outcome.run_dir} "
                              f"has seed {seed}")
        first_seed = seed if first_seed is None else first_seed
        runs.append((run.record, run.artifact("template.json")))
        broken += [node for node in outcome.failed_invariants if node not in broken]
    provenance = {"harness": env.harness_revision(), "forced": bool(broken and force), "failed_invariants": broken}
    return write_entry(baselines_dir, runs, provenance)


def _refusal(outcome: SeedSession) -> str | None:
    """Why a session's run must not become part of the entry, or None."""
    if outcome.exit_code not in (0, 1):  # pytest's: checks failed (CHANGED ones are expected here) or not
        return outcome.refusal or f"pytest's exit status {outcome.exit_code}: its checks did not run to their end"
    if outcome.refusal:
        return outcome.refusal
    if outcome.run_dir is None:
        return "it left no trained run (only the prepared stage ran, as with -m yoda_structural, or training failed)"
    return None


def write_entry(baselines_dir: Path, runs: list[tuple[TrainedRun, dict]], provenance: dict) -> tuple[Path, list[str]]:
    """Record the runs (one config over one or more seeds, each its record and rendered template) as one
    entry of their profile's baseline file."""
    (record, template), others = runs[0], runs[1:]
    path = baselines_dir / f"{record.profile}.json"
    with baselines.file_lock(path):
        lines = baselines.update(path, record.profile, record, template, spread_runs=others,
                                 provenance=provenance)
    return path, lines


class _SessionOutcome:
    """A pytest plugin object: what the session came to, read from the harness's own session plugin."""

    def __init__(self, force: bool):
        self.force = force
        self.outcome: dict = {"run_dir": None, "refusal": "the session ran no check of the suites (its output says why)"}

    def pytest_sessionfinish(self, session):
        from harness.checks import plugin

        harness = session.config.pluginmanager.get_plugin(plugin.PLUGIN_NAME)
        if harness is None or harness.is_worker:
            return
        finished = harness.finished_run()
        self.outcome = {"run_dir": str(finished.directory) if finished is not None else None,
                        "refusal": harness.recording_refusal(self.force, "--force"),
                        "failed_invariants": harness.tally.failed("invariant")}


def _session_main(argv: list[str]) -> int:
    """`python -m harness.versions.recording RESULT force|no-force PYTEST_ARGS...`: one seed's session."""
    import pytest

    result, force, pytest_args = Path(argv[0]), argv[1] == "force", argv[2:]
    outcome = _SessionOutcome(force)
    code = int(pytest.main(pytest_args, plugins=[outcome]))
    files.write_json(result, dict(outcome.outcome, exit_code=code))
    return code


if __name__ == "__main__":
    sys.exit(_session_main(sys.argv[1:]))
