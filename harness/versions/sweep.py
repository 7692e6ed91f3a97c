"""`python -m harness sweep JOBS_FILE`: a recurring experiment as one command.

A jobs file holds one run per line, `NAME WORD...`; `#` starts a comment. A word is

    KEY=VALUE              a recipe override (`--yoda-override KEY=VALUE`), e.g. training.seed=3
    profile:NAME_OR_FILE   the run's profile: a built-in or a profile file, relative to the jobs file
                           (default: the command's --profile); a model's shape is a profile field
    env:NAME=VALUE         an environment variable for that run alone (another version set's site
                           first on PYTHONPATH, PYTEST_ADDOPTS=--deselect=..., ...)

Each run is `pytest suites --yoda-profile P --yoda-override ...` in its own process with THREADS
threads (OMP/MKL), PARALLEL at a time, in its own cache (`OUT/NAME/cache`: a sweep run again reuses
its finished runs and only prints the table again); runs with the same `env:` words share one models
directory, whose checkpoints are built once before any run starts, so parallel runs never race to
build one. Each run leaves `OUT/NAME/result.json`, `pytest.log` and `summary.md` (the BROKEN / CHANGED
summary); the sweep then prints one table (`OUT/table.md`; every field in `OUT/sweep.json`): the
session's own verdict (read from the result JSON the plugin wrote, harness.checks.result, never
re-derived) and what the model learned (from the run's record).

The runner (job, paths, threads, timeout -> exit status) is injectable, so the sweep runs in tests
with a fake one; `PytestRunner` is the real one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from harness.checks.result import ResultError, SessionResult

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A run that reached a verdict: pytest's exit 0 (every check held) or 1 (a check failed). Anything
# else (an interrupt, an internal or usage error, a timeout) means the run says nothing.
VERDICT_EXITS = (0, 1)
TIMED_OUT, NOT_STARTED = "timeout", "not started"


class JobsError(ValueError):
    """A jobs file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Job:
    name: str
    profile: str
    overrides: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    line: int = 0

    def environment_tag(self) -> str:
        """Runs with the same `env:` words share a models directory (their libraries built the same checkpoint)."""
        if not self.env:
            return "default"
        return hashlib.sha256(json.dumps(sorted(self.env)).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunPaths:
    """Where one run of the sweep writes."""

    directory: Path
    models: Path

    @property
    def result(self) -> Path:
        return self.directory / "result.json"

    @property
    def log(self) -> Path:
        return self.directory / "pytest.log"

    @property
    def summary(self) -> Path:
        return self.directory / "summary.md"

    @property
    def cache(self) -> Path:
        return self.directory / "cache"


def paths_of(job: Job, out: Path) -> RunPaths:
    return RunPaths(out / job.name, out / "models" / job.environment_tag())


# ------------------------------------------------------------------ the jobs file
def parse_jobs(path: Path, default_profile: str) -> list[Job]:
    """The jobs of a file, in its order; any word it cannot use is a JobsError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise JobsError(f"{path}: cannot read the jobs file ({error.strerror})") from None
    jobs, seen = [], {}
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as error:
            raise JobsError(f"{path}:{number}: {error}") from None
        if not words:
            continue
        name, *rest = words
        where = f"{path}:{number}"
        if not NAME_PATTERN.fullmatch(name) or "=" in name or ":" in name:
            raise JobsError(f"{where}: {name!r}: a line starts with the run's name (letters, digits, '.', '_', '-')")
        if name in seen:
            raise JobsError(f"{where}: {name!r}: the name of line {seen[name]} again (a run's files are named by it)")
        seen[name] = number
        profile, overrides, env = default_profile, [], []
        for word in rest:
            if word.startswith("profile:"):
                profile = _profile_word(word.removeprefix("profile:"), path, where)
            elif word.startswith("env:"):
                variable, sep, value = word.removeprefix("env:").partition("=")
                if not sep or not variable:
                    raise JobsError(f"{where}: {word!r}: expected env:NAME=VALUE")
                env.append((variable, value))
            elif "=" in word and not word.startswith("="):
                overrides.append(word)
            else:
                raise JobsError(f"{where}: {word!r}: expected KEY=VALUE (a recipe override), profile:NAME_OR_FILE "
                                "or env:NAME=VALUE")
        jobs.append(Job(name, profile, tuple(overrides), tuple(env), number))
    if not jobs:
        raise JobsError(f"{path}: no jobs (one run a line: NAME WORD...)")
    return jobs


def _profile_word(value: str, jobs_file: Path, where: str) -> str:
    if not value:
        raise JobsError(f"{where}: profile: expected a profile name or file")
    if not value.endswith(".toml") or Path(value).is_absolute():
        return value
    return str((jobs_file.parent / value).resolve())


def check_jobs(jobs: list[Job]) -> None:
    """Every profile and override before anything runs: a typo fails here, naming the run."""
    from harness.run import options

    from harness.recipe import profiles
    loaded = {}
    for job in jobs:
        try:
            if job.profile != "auto" and job.profile not in loaded:
                loaded[job.profile] = profiles.load_profile(job.profile)
            profile = profiles.PROFILES["tiny"] if job.profile == "auto" else loaded[job.profile]
            options.recipe_config(profile, None, list(job.overrides))
        except (profiles.ProfileError, options.OptionError) as error:
            raise JobsError(f"line {job.line} ({job.name}): {error}") from None


# ------------------------------------------------------------------ running
Runner = Callable[[Job, RunPaths, int, "float | None"], "int | str"]


@dataclass
class Result:
    """One run: how it ended, and what its session and its record say."""

    name: str
    line: int
    profile: str
    overrides: list[str]
    env: dict[str, str]
    exit: int | str  # pytest's exit status, or "timeout" / "not started"
    seconds: float
    verdict: str = ""  # the session's headline (yoda_harness_verdict)
    broken: int | None = None
    changed: int | None = None
    tests: dict[str, int] = field(default_factory=dict)  # passed, failed, skipped, errors
    learned: dict = field(default_factory=dict)  # from the trained run's record
    directory: str = ""

    @property
    def reached_a_verdict(self) -> bool:
        return self.exit in VERDICT_EXITS


def sweep(jobs: list[Job], out: Path, run: Runner, *, parallel: int = 1, threads: int = 1,
          deadline: float | None = None, log: Callable[[str], None] = print) -> list[Result]:
    """Run every job (`parallel` at a time, each with `threads` threads); the results in the jobs' order.

    With a `deadline` (seconds from now), a run still going then is stopped and one not yet started is
    not started; both are listed.
    """
    out.mkdir(parents=True, exist_ok=True)
    ends_at = None if deadline is None else time.monotonic() + deadline
    lock = threading.Lock()

    def one(job: Job) -> Result:
        paths = paths_of(job, out)
        start = time.monotonic()
        timeout = None if ends_at is None else ends_at - start
        if timeout is not None and timeout <= 0:
            status: int | str = NOT_STARTED
        else:
            paths.directory.mkdir(parents=True, exist_ok=True)
            for stale in (paths.result, paths.summary):  # an earlier sweep's, into the same directory
                stale.unlink(missing_ok=True)
            status = run(job, paths, threads, timeout)
        result = read_result(job, paths, status, time.monotonic() - start)
        with lock:
            log(f"{job.name}: {describe_exit(result.exit)}, {result.seconds:.0f} s"
                + (f"; {result.verdict}" if result.verdict else ""))
        return result

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return list(pool.map(one, jobs))


def describe_exit(status: int | str) -> str:
    if isinstance(status, str):
        return status
    meaning = {0: "every check held", 1: "a check failed", 2: "interrupted", 3: "internal error",
               4: "usage error", 5: "no tests collected"}.get(status, "")
    return f"exit {status}" + (f" ({meaning})" if meaning else "")


def read_result(job: Job, paths: RunPaths, status: int | str, seconds: float) -> Result:
    result = Result(job.name, job.line, job.profile, list(job.overrides), dict(job.env), status, round(seconds, 1),
                    directory=str(paths.directory))
    if paths.result.is_file():
        try:
            _read_session(SessionResult.read(paths.result), result)
        except ResultError as error:
            result.verdict = str(error)
    result.learned = learned(paths.cache / "runs")
    return result


def _read_session(session: SessionResult, result: Result) -> None:
    """The session's own verdict and counts, as the plugin wrote them (its result JSON)."""
    result.verdict = session.headline or ""
    if session.headline is not None:
        result.broken, result.changed = len(session.broken), len(session.changed)
    counts = session.counts
    result.tests = {"passed": counts["passed"], "failed": counts["failed"], "errors": counts["error"],
                    "skipped": counts["skipped"]}


def learned(runs_dir: Path) -> dict:
    """What the run's trained model learned, from its record: {} when no trained run finished."""
    from harness.run import artifacts
    from harness.run.stages import read_record

    for manifest_path in sorted(runs_dir.glob("*/" + artifacts.MANIFEST)):
        record = read_record(manifest_path.parent)
        if not record.trained or record.status != artifacts.COMPLETE:
            continue
        tuned, base = record.metrics.tuned, record.metrics.base
        versus = record.columns.target_key
        losses = [point.loss for point in record.training.loss_history]
        return {"run": manifest_path.parent.name, "steps": record.training.global_step,
                "non_empty_stop_rate": tuned.non_empty_stop_rate, "bleu": tuned.versus[versus].bleu,
                "base_bleu": base.versus[versus].bleu, "mean_words": tuned.mean_words,
                "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None}
    return {}


# ------------------------------------------------------------------ the table
def table(results: list[Result]) -> str:
    lines = ["| run | exit | s | passed / failed / skipped | BROKEN | CHANGED | non-empty stops | "
             "BLEU tuned / base | words | loss first -> last |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        counts = (f"{r.tests['passed']} / {r.tests['failed'] + r.tests['errors']} / {r.tests['skipped']}"
                  if r.tests else "")
        broke = r.verdict.split("; ")[0] if r.broken else ("0" if r.broken == 0 else "")
        row = [r.name, describe_exit(r.exit), f"{r.seconds:.0f}", counts, broke,
               "" if r.changed is None else str(r.changed)]
        got = r.learned
        if got:
            row += [f"{got['non_empty_stop_rate']:.0%}", f"{got['bleu']:.2f} / {got['base_bleu']:.2f}",
                    "" if got["mean_words"] is None else f"{got['mean_words']:.1f}",
                    "" if got["loss_first"] is None else f"{got['loss_first']:.2f} -> {got['loss_last']:.2f}"]
        else:
            row += ["", "", "", ""]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def write_results(results: list[Result], out: Path) -> str:
    text = table(results)
    (out / "table.md").write_text(text, encoding="utf-8")
    (out / "sweep.json").write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8")
    return text


# ------------------------------------------------------------------ the real runner
BUILD_CHECKPOINT = ("import sys; from harness import options, profiles; o = options.model_options(None); "
                    "profiles.resolve(sys.argv[1], o).build_checkpoint(o)")


@dataclass
class PytestRunner:
    """`pytest suites` in a process of its own, in `python`'s environment (default: this one)."""

    python: str = sys.executable
    root: Path = field(default_factory=Path.cwd)
    pytest_args: tuple[str, ...] = ()

    def suites(self) -> list[str]:
        """The project's suites where the sweep runs from a checkout, else the installed ones."""
        return ["suites"] if (self.root / "suites").is_dir() else ["--pyargs", "harness.suites"]

    def environment(self, job: Job, paths: RunPaths, threads: int) -> dict[str, str]:
        return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "YODA_HARNESS_CACHE": str(paths.cache.resolve()), "YODA_HARNESS_MODELS_DIR": str(paths.models.resolve()),
                "YODA_HARNESS_QUIET": "1", **dict(job.env)}

    def command(self, job: Job, paths: RunPaths) -> list[str]:
        overrides = [word for override in job.overrides for word in ("--yoda-override", override)]
        return [self.python, "-m", "pytest", *self.suites(), "--yoda-profile", job.profile, *overrides,
                "-p", "no:cacheprovider", "-q", f"--yoda-result-json={paths.result.resolve()}",
                f"--yoda-summary-md={paths.summary.resolve()}", *self.pytest_args]

    def prepare(self, jobs: list[Job], out: Path, log: Callable[[str], None] = print) -> None:
        """Build each environment's checkpoints once, one at a time, before the runs share them."""
        done = set()
        for job in jobs:
            paths = paths_of(job, out)
            key = (job.environment_tag(), job.profile)
            if key in done:
                continue
            done.add(key)
            paths.models.mkdir(parents=True, exist_ok=True)
            built = subprocess.run([self.python, "-c", BUILD_CHECKPOINT, job.profile], cwd=self.root,
                                   env=self.environment(job, paths, threads=os.cpu_count() or 1),
                                   capture_output=True, text=True)
            if built.returncode != 0:  # the runs will say why, each in its own log
                tail = (built.stderr.strip().splitlines() or ["?"])[-1]
                log(f"checkpoint of {job.profile} for {job.name}'s environment not built: {tail}")

    def __call__(self, job: Job, paths: RunPaths, threads: int, timeout: float | None) -> int | str:
        with open(paths.log, "w", encoding="utf-8") as log:
            try:
                return subprocess.run(self.command(job, paths), cwd=self.root, env=self.environment(job, paths, threads),
                                      stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                return TIMED_OUT
