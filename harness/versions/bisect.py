"""Find the library upgrade that flips a check from pass to fail.

Given a good and a bad version set (versions.toml) and a check (a pytest node id or a `-k`
expression on the suites):

  1. confirm the ends: the good set passes the check, the bad set fails it;
  2. move one package at a time: the good set with package P at its bad-set version. A move that
     fails the check names P as a culprit. If no single move fails (the break needs two upgrades
     together, or single moves cannot be installed), apply the upgrades cumulatively, in the bad
     set's order, until the check fails: the package added last is the culprit, in the context of
     the ones before it;
  3. bisect over the culprit's own releases between its two versions (from the package index) in
     that same context, to find the first bad release.

Every tried set and its outcome is kept as evidence. A set that cannot be installed or run
("cannot-run") is skipped, as `git bisect skip` does, and the answer then names the range.

The runner (pins -> passed?) and the release list (package -> versions) are injectable, so the
search runs in tests with fakes; `VenvRunner` and `pip_index_versions` are the real ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from harness.checks.result import SessionResult

Pins = dict[str, "str | None"]  # canonical package name -> exact version (None: unpinned, newest)
Runner = Callable[[Pins], bool]
ReleaseLister = Callable[[str], list[str]]

PASS, FAIL, CANNOT_RUN = "pass", "fail", "cannot-run"


class CannotRun(Exception):
    """Raised by a runner when a set cannot be installed or the check cannot run with it."""


class BisectError(RuntimeError):
    """The search itself cannot go on (a check that selects nothing, a usage error)."""


@dataclass
class Trial:
    label: str
    pins: Pins
    outcome: str  # pass | fail | cannot-run
    detail: str = ""

    def line(self, index: int) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"[{index}] {self.label}: {self.outcome.upper()}{detail}"


@dataclass
class Finding:
    """One culprit package and, where its releases could be listed, its first bad release."""

    package: str
    good_version: str | None
    bad_version: str | None
    context: str  # "alone" or "after: a, b"
    first_bad: str | None = None
    last_good: str | None = None
    untestable: list[str] = field(default_factory=list)  # releases between last_good and first_bad that could not run
    releases_note: str = ""

    def describe(self) -> str:
        text = f"{self.package} {self.good_version or 'unpinned'} -> {self.bad_version or 'unpinned'}"
        text += "" if self.context == "alone" else f" (only together with the upgrades of {self.context})"
        if self.first_bad:
            text += f"; first bad release {self.first_bad}"
            if self.last_good:
                text += f" (last good {self.last_good})"
            if self.untestable:
                text += (f"; {', '.join(self.untestable)} could not run, so the first bad release is one of "
                         f"{', '.join(self.untestable + [self.first_bad])}")
        if self.releases_note:
            text += f"; {self.releases_note}"
        return text


@dataclass
class BisectResult:
    findings: list[Finding]
    trials: list[Trial]
    conclusion: str

    @property
    def culprit(self) -> str | None:
        return self.findings[0].package if len(self.findings) == 1 else None

    def report(self) -> str:
        lines = ["tried:"] + [f"  {t.line(i)}" for i, t in enumerate(self.trials, 1)]
        lines.append(f"conclusion: {self.conclusion}")
        for finding in self.findings:
            lines.append(f"culprit: {finding.describe()}")
        return "\n".join(lines)


# ------------------------------------------------------------------ helpers
def canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def pins_of(requirements: Iterable[str]) -> Pins:
    """["trl==0.12.1", "peft"] -> {"trl": "0.12.1", "peft": None}; ranges are not bisectable."""
    from packaging.requirements import Requirement

    pins: Pins = {}
    for text in requirements:
        requirement = Requirement(text)
        specs = list(requirement.specifier)
        exact = [s.version for s in specs if s.operator in ("==", "===") and "*" not in s.version]
        if specs and not exact:
            raise BisectError(f"{text!r}: bisect needs exact pins (==) or bare names, not ranges")
        pins[canonical(requirement.name)] = exact[0] if exact else None
    return pins


def requirement_strings(pins: Pins) -> list[str]:
    return [name if version is None else f"{name}=={version}" for name, version in pins.items()]


def describe_move(name: str, old: str | None, new: str | None) -> str:
    return f"{name} {old or 'unpinned'} -> {new or 'unpinned'}"


def releases_between(releases: Iterable[str], start: str, end: str) -> list[str]:
    """Releases strictly between `start` and `end`, ordered from `start` towards `end` (either
    direction); pre-releases only when an end is one. Unparseable versions are dropped."""
    from packaging.version import InvalidVersion, Version

    low, high = sorted((Version(start), Version(end)))
    allow_pre = low.is_prerelease or high.is_prerelease
    between = set()
    for text in releases:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if low < version < high and (allow_pre or not version.is_prerelease):
            between.add(version)
    ordered = sorted(between)
    if Version(start) > Version(end):
        ordered.reverse()
    return [str(v) for v in ordered]


# ------------------------------------------------------------------ the search
def _key(pins: Pins) -> tuple:
    return tuple(sorted(pins.items(), key=lambda kv: kv[0]))


class _Session:
    """Runs sets through the runner once each (memoized) and keeps the evidence."""

    def __init__(self, runner: Runner, log: Callable[[str], None]):
        self.runner, self.log = runner, log
        self.trials: list[Trial] = []
        self.memo: dict[tuple, Trial] = {}

    def run(self, label: str, pins: Pins, again: bool = False) -> str:
        """The check's outcome on `pins` (each set once); `again` runs it once more, from scratch
        where the runner can (`fresh=True`), and keeps the first outcome in the memo."""
        key = _key(pins)
        if key in self.memo and not again:
            return self.memo[key].outcome
        try:
            passed = self.runner(dict(pins), fresh=True) if again and _takes_fresh(self.runner) else self.runner(dict(pins))
            outcome, detail = (PASS, "") if passed else (FAIL, "")
        except CannotRun as error:
            outcome, detail = CANNOT_RUN, str(error)
        trial = Trial(label, dict(pins), outcome, detail)
        self.trials.append(trial)
        self.memo.setdefault(key, trial)
        self.log(trial.line(len(self.trials)))
        return outcome


def _takes_fresh(runner) -> bool:
    import inspect

    try:
        return "fresh" in inspect.signature(runner).parameters
    except (TypeError, ValueError):
        return False


def bisect(good: Pins, bad: Pins, runner: Runner, releases: ReleaseLister | None = None,
           log: Callable[[str], None] = lambda line: None, verify_ends: bool = True,
           end_runs: int = 2) -> BisectResult:
    """Find the package upgrade (and its first bad release) that flips the check; see the module doc.

    Each end is run `end_runs` times (again from scratch where the runner takes `fresh`) before
    anything is blamed: an end whose outcomes disagree makes the check flaky, and the search stops
    saying so instead of naming a culprit.
    """
    good = {canonical(k): v for k, v in good.items()}
    bad = {canonical(k): v for k, v in bad.items()}
    session = _Session(runner, log)

    if verify_ends:
        for label, pins, expected in (("good set", good, PASS), ("bad set", bad, FAIL)):
            outcomes = [session.run(label, pins)]
            outcomes += [session.run(f"{label}, run again", pins, again=True) for _ in range(end_runs - 1)]
            if len(set(outcomes)) > 1:
                return BisectResult([], session.trials, f"the check is flaky: the {label} gave "
                                    f"{' then '.join(outcomes)} on the same versions; nothing is blamed")
            if outcomes[0] != expected:
                what = ("does not pass the check", "pick a good set that passes") if expected == PASS else (
                    "does not fail the check", "nothing to bisect")
                return BisectResult([], session.trials, f"the {label} {what[0]} ({outcomes[0]}): {what[1]}")

    order = list(bad) + [name for name in good if name not in bad]
    moves = [name for name in order if good.get(name) != bad.get(name)]
    if not moves:
        return BisectResult([], session.trials, "the two sets pin the same versions")

    def moved(base: Pins, name: str) -> Pins:
        pins = dict(base)
        if name in bad:
            pins[name] = bad[name]
        else:
            pins.pop(name, None)
        return pins

    # 2a. one package at a time
    single = {name: session.run(f"good + {describe_move(name, good.get(name), bad.get(name))}", moved(good, name))
              for name in moves}
    culprits = [(name, "alone", good) for name in moves if single[name] == FAIL]

    # 2b. cumulative, when no single move fails
    unconfirmed = ""
    if not culprits:
        current, applied = dict(good), []
        for name in moves:
            before = dict(current)
            current = moved(current, name)
            applied.append(name)
            outcome = FAIL if current == bad and verify_ends else session.run(
                "good + " + ", ".join(describe_move(n, good.get(n), bad.get(n)) for n in applied), current)
            if outcome == FAIL:
                context = ", ".join(applied[:-1]) or "alone"
                culprits = [(name, context, before)]
                before_outcome = session.memo.get(_key(before))
                if before_outcome is not None and before_outcome.outcome != PASS:
                    unconfirmed = f"the set before this upgrade was {before_outcome.outcome}, so this is unconfirmed"
                break
    if not culprits:
        unknown = [name for name in moves if single[name] == CANNOT_RUN]
        return BisectResult([], session.trials, "no upgrade, alone or cumulatively, failed the check"
                            + (f"; these moves could not run: {', '.join(unknown)}" if unknown else ""))

    # 3. the first bad release of each culprit, in its context
    findings = []
    for name, context, base in culprits:
        finding = Finding(name, good.get(name), bad.get(name), context)
        _bisect_releases(session, finding, base, releases, log)
        if unconfirmed:
            finding.releases_note = "; ".join(filter(None, [finding.releases_note, unconfirmed]))
        findings.append(finding)
    if len(findings) == 1:
        conclusion = f"the check flips with {findings[0].describe()}"
    else:
        conclusion = ("each of these upgrades alone fails the check: "
                      + "; ".join(f.describe() for f in findings))
    return BisectResult(findings, session.trials, conclusion)


def _bisect_releases(session: _Session, finding: Finding, base: Pins, releases: ReleaseLister | None,
                     log: Callable[[str], None]) -> None:
    name, start, end = finding.package, finding.good_version, finding.bad_version
    if start is None or end is None:
        finding.releases_note = "one side is unpinned or absent: no release range to bisect"
        return
    if releases is None:
        finding.first_bad, finding.last_good = end, start
        finding.releases_note = "releases not listed (no index): the first bad release is assumed to be the bad set's"
        return
    try:
        listed = releases(name)
    except Exception as error:  # an unreachable index must not lose the package-level answer
        finding.first_bad, finding.last_good = end, start
        finding.releases_note = f"could not list {name}'s releases ({error}); first bad release not narrowed"
        return
    between = releases_between(listed, start, end)
    sequence = [start, *between, end]
    low, high = 0, len(sequence) - 1  # sequence[low] passes in this context, sequence[high] fails
    untestable: set[int] = set()
    log(f"{name}: {len(between)} release(s) between {start} and {end}")
    while True:
        candidates = [i for i in range(low + 1, high) if i not in untestable]
        if not candidates:
            break
        middle = candidates[len(candidates) // 2]
        pins = dict(base)
        pins[name] = sequence[middle]
        outcome = session.run(f"{'good' if finding.context == 'alone' else 'context'} + "
                              f"{describe_move(name, start, sequence[middle])}", pins)
        if outcome == PASS:
            low = middle
        elif outcome == FAIL:
            high = middle
        else:
            untestable.add(middle)
    finding.first_bad, finding.last_good = sequence[high], sequence[low]
    finding.untestable = [sequence[i] for i in range(low + 1, high)]


def resolve_unpinned(pins: Pins, releases: ReleaseLister) -> Pins:
    """Unpinned packages (None) pinned to their newest final release, so every trial is exact."""
    from packaging.version import InvalidVersion, Version

    resolved = dict(pins)
    for name, version in pins.items():
        if version is not None:
            continue
        finals = []
        for text in releases(name):
            try:
                parsed = Version(text)
            except InvalidVersion:
                continue
            if not parsed.is_prerelease:
                finals.append(parsed)
        if finals:
            resolved[name] = str(max(finals))
    return resolved


# ------------------------------------------------------------------ the real release list
def pip_index_versions(name: str, python: str = sys.executable, extra_args: Iterable[str] = ()) -> list[str]:
    """Versions of `name` on pip's configured index (`pip index versions`), newest first."""
    completed = subprocess.run([python, "-m", "pip", "index", "versions", name, *extra_args],
                               capture_output=True, text=True, timeout=300)
    match = re.search(r"Available versions:\s*(.+)", completed.stdout)
    if completed.returncode != 0 or not match:
        raise BisectError(f"pip index versions {name} failed: {(completed.stderr or completed.stdout).strip()[-500:]}")
    return [v.strip() for v in match.group(1).split(",") if v.strip()]


# ------------------------------------------------------------------ the real runners
def pytest_selection(check: str) -> list[str]:
    """A node id / path is passed as is; anything else is a `-k` expression on the suites."""
    if "::" in check or check.endswith(".py") or check.startswith("suites/"):
        return [check]
    return ["suites", "-k", check]


def outcome_of(session: SessionResult, log_path: Path, check: str) -> bool:
    """The session's result -> passed? (raises CannotRun / BisectError)."""
    code = session.exit_status
    if code == 0 and session.counts["passed"]:
        return True
    if code == 0:
        skips = [skipped.message for skipped in session.skips()]
        raise CannotRun(f"the check was skipped: {skips[0] if skips else 'no test ran'} (log {log_path})")
    if code in (1, 2):
        return False
    if code == 5:
        raise BisectError(f"the check {check!r} selects no test (log {log_path})")
    raise BisectError(f"pytest exit {code} running the check (log {log_path})")


def run_check(python: str, check: str, profile: str, cache: Path, result_path: Path, log_path: Path,
              cwd: Path, variant: str | None = None, fresh: bool = False, overrides: Iterable[str] = ()) -> bool:
    """Run the check with `python`'s pytest against the harness cache `cache`; passed? (`outcome_of`).

    The command goes to `log_path` first, then pytest's output. Both runners call this: only how they
    get an environment differs.
    """
    from harness.versions import runner

    session = runner.run_suites(python, runner.suite_args(pytest_selection(check), profile, cache, variant=variant,
                                                          fresh=fresh, overrides=overrides, extra=["-q"]),
                                result_path=result_path, log_path=log_path, cwd=cwd,
                                env=runner.cache_environment(cache))
    return outcome_of(session, log_path, check)


@dataclass
class SwapRunner:
    """Run the check in one existing environment, swapping in each trial's versions of the small
    pure-Python packages (harness.versions.history.SWAPPABLE, e.g. trl) with --no-deps: seconds per trial
    instead of a new environment. A trial that differs in anything else cannot run here."""

    python: str
    check: str
    variant: str | None = None
    profile: str = "tiny"
    overrides: tuple[str, ...] = ()
    work_dir: Path = Path(".nox/bisect-swap")
    cache_dir: Path | None = None
    find_links: tuple[str, ...] = ()
    project_root: Path = Path(".")
    log: Callable[[str], None] = print

    def __call__(self, pins: Pins, fresh: bool = False) -> bool:
        from harness.versions import history, matrix
        version_set = matrix.VersionSet("bisect-trial", tuple(requirement_strings(pins)))
        try:
            history.swap_into(self.python, version_set, self.find_links, log=self.log)
        except history.SwapError as error:
            raise CannotRun(str(error)) from None
        root = Path(self.work_dir).resolve()
        root.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(json.dumps([sorted(requirement_strings(pins)), self.variant, self.check]).encode()).hexdigest()[:12]
        result_path, log_path = root / f"{key}.session.json", root / f"{key}{'-fresh' if fresh else ''}.log"
        cache = Path(self.cache_dir or root / "harness-cache").resolve()
        return run_check(self.python, self.check, self.profile, cache, result_path, log_path, self.project_root,
                         self.variant, fresh, self.overrides)


@dataclass
class VenvRunner:
    """Install a set into a fresh virtual environment of its own and run the check there.

    passed = pytest exit 0 with at least one check passed; fail = exit 1 or 2 (a failed check, or
    the suites no longer import); `CannotRun` = install failed, or every selected check skipped.
    """

    check: str
    profile: str = "tiny"
    work_dir: Path = Path(".nox/bisect")
    project_root: Path = Path(".")
    torch_spec: str = field(default_factory=lambda: os.environ.get("YODA_HARNESS_TORCH_WHEEL") or "torch")
    python: str = sys.executable
    log: Callable[[str], None] = print

    def pytest_selection(self) -> list[str]:
        return pytest_selection(self.check)

    variant: str | None = None
    overrides: tuple[str, ...] = ()

    def __call__(self, pins: Pins, fresh: bool = False) -> bool:
        from harness.versions import matrix

        requirements = requirement_strings(pins)
        key = hashlib.sha256(json.dumps([sorted(requirements), self.profile, self.torch_spec]).encode()).hexdigest()[:12]
        root = Path(self.work_dir).resolve() / key
        venv, cache = root / "venv", root / "harness-cache"
        result_path, install_log, log_path = root / "session.json", root / "install.log", root / "log.txt"
        root.mkdir(parents=True, exist_ok=True)
        python = venv / "bin" / "python"
        stamp = root / ".installed"
        if not stamp.exists():
            with open(install_log, "a", encoding="utf-8") as log:
                shutil.rmtree(venv, ignore_errors=True)
                self._step([self.python, "-m", "venv", str(venv)], log, "create venv")
                deps = matrix.install_requirements(requirements, self.torch_spec,
                                                   matrix.project_dependencies(Path(self.project_root) / "pyproject.toml"))
                self._step([str(python), "-m", "pip", "install", "-q", *deps], log, "install")
                self._step([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(Path(self.project_root).resolve())],
                           log, "install the project")
            stamp.touch()
        return run_check(str(python), self.check, self.profile, cache, result_path, log_path, self.project_root,
                         self.variant, fresh, self.overrides)

    def _step(self, command: list[str], log, what: str) -> None:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log.write(completed.stdout)
        if completed.returncode != 0:
            errors = [line.strip() for line in completed.stdout.splitlines() if line.strip().startswith("ERROR")]
            raise CannotRun(f"{what} failed: {' / '.join(errors) or completed.stdout.strip()[-300:]}")
