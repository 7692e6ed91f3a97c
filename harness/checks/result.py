"""The session's own result, as the plugin knew it at the end of the session.

`pytest suites --yoda-result-json PATH` writes it (harness.checks.plugin); whatever ran the session
reads it back (harness.versions.runner.run_suites: the matrix, the history, bisect, the gate, the
sweep) instead of re-deriving verdicts from JUnit XML. One model for the writer and every reader:

    {"schema": 1, "profile": "tiny", "exit_status": 1,
     "headline": "1 thing broke: ...; nothing changed",        # the verdict line as printed
     "broken": [{"nodeid", "headline", "summary", "message"}], "changed": [...],
     "not_compared": 29, "not_compared_causes": {"no baseline entry for ...": 29}, "not_run": 0,
     "crash": {"line", "phase", "root_cause"} | null,
     "counts": {"passed": 40, "failed": 1, "error": 0, "skipped": 16},
     "checks": [{"nodeid", "outcome", "message", "kind", "verdict", "headline", "detail", "settings", ...}],
     "library_warnings": [...], "new_library_warnings": [...] | null,
     "run": {"key", "directory", "state": "new" | "reused", "stage": "prepared" | "trained"} | null,
     "compared_with": "..." | null}
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

SCHEMA = 1
OUTCOMES = ("passed", "failed", "error", "skipped")
BROKEN, CHANGED, NOT_RUN = "BROKEN", "CHANGED", "not run"


class ResultError(ValueError):
    """A result JSON that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Check:
    """One test of the session: its outcome and, for a check of the recipe (`kind` set), its verdict."""

    nodeid: str
    outcome: str  # passed | failed | error (failed outside its call) | skipped
    message: str = ""  # the first lines of its failure or skip
    kind: str | None = None  # invariant | comparison; None for a test that is no check of the recipe
    verdict: str | None = None  # passed | skipped | BROKEN | CHANGED | not run
    headline: str = ""  # what its failure means in the recipe's words (its yoda_check marker), "" if none
    detail: str = ""  # what its message names that the headline carries (the misread token)
    settings: tuple[str, ...] = ()  # the recipe settings it is about
    crash: str | None = None  # the recipe's crash line, on the check that met it
    not_run: str | None = None  # the crash that kept it from running

    @property
    def suite(self) -> str:
        """'suites/test_labels.py::test_x[a]' -> 'test_labels.py'."""
        return self.nodeid.split("::")[0].rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        """'suites/test_labels.py::test_x[a]' (or JUnit's 'suites.test_labels.test_x[a]') -> 'test_x'."""
        return self.nodeid.split("[", 1)[0].replace("::", ".").rsplit(".", 1)[-1]

    def says(self, detail: bool = True) -> str:
        """What its BROKEN or CHANGED verdict means: the crash it met, else its headline (with what its
        message names, unless `detail` is off), else its name."""
        if self.crash:
            return self.crash
        text = self.headline or self.name
        return f"{text}: {self.detail}" if detail and self.detail else text


@dataclass(frozen=True)
class Finding:
    """A BROKEN or CHANGED check as the verdict names it."""

    nodeid: str
    headline: str  # the check's headline, else its name
    summary: str  # its part of the verdict line
    message: str = ""


@dataclass(frozen=True)
class Crash:
    line: str
    phase: str
    root_cause: str


@dataclass(frozen=True)
class RunRef:
    key: str | None
    directory: str
    state: str  # new | reused
    stage: str  # prepared | trained


@dataclass
class SessionResult:
    profile: str | None
    exit_status: int
    headline: str | None = None  # None: no check of the recipe ran
    broken: list[Finding] = field(default_factory=list)
    changed: list[Finding] = field(default_factory=list)
    not_compared: int = 0
    not_compared_causes: dict[str, int] = field(default_factory=dict)
    not_run: int = 0
    crash: Crash | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    checks: list[Check] = field(default_factory=list)
    library_warnings: list[dict] = field(default_factory=list)
    new_library_warnings: list[dict] | None = None  # None: no baseline entry to say what is new
    run: RunRef | None = None
    compared_with: str | None = None
    schema: int = SCHEMA

    # ---------------------------------------------------------------- per suite file
    def suite_counts(self) -> dict[str, dict[str, int]]:
        """{'test_labels.py': {'passed': 5, 'failed': 1, 'error': 0, 'skipped': 0}, ...}, sorted."""
        counts: dict[str, Counter] = {}
        for check in self.checks:
            counts.setdefault(check.suite, Counter())[check.outcome] += 1
        return {suite: {k: tally[k] for k in OUTCOMES} for suite, tally in sorted(counts.items())}

    def suite_outcomes(self) -> dict[str, str]:
        """Per suite file: failed (a test failed or errored), else passed (one passed), else skipped."""
        return {suite: "failed" if tally["failed"] or tally["error"] else "passed" if tally["passed"] else "skipped"
                for suite, tally in self.suite_counts().items()}

    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.outcome in ("failed", "error")]

    def skips(self) -> list[Check]:
        return [check for check in self.checks if check.outcome == "skipped"]

    # ---------------------------------------------------------------- JSON
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "result JSON") -> "SessionResult":
        try:
            raw = json.loads(text)
        except ValueError as error:
            raise ResultError(f"{where}: not valid JSON: {error}") from None
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
            found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
            raise ResultError(f"{where}: not a session result of schema {SCHEMA} (schema: {found!r})")
        try:
            return cls(**{**_known(cls, raw),
                          "broken": [Finding(**item) for item in raw.get("broken", [])],
                          "changed": [Finding(**item) for item in raw.get("changed", [])],
                          "crash": Crash(**raw["crash"]) if raw.get("crash") else None,
                          "checks": [Check(**{**item, "settings": tuple(item.get("settings", ()))})
                                     for item in raw.get("checks", [])],
                          "run": RunRef(**raw["run"]) if raw.get("run") else None})
        except TypeError as error:
            raise ResultError(f"{where}: {error}") from None

    def write(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path | str) -> "SessionResult":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ResultError(f"{path}: cannot read the session result ({error.strerror})") from None
        return cls.from_json(text, str(path))


def _known(cls, raw: dict) -> dict:
    names = {f.name for f in fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise TypeError(f"unknown field(s) {sorted(unknown)}")
    return {name: value for name, value in raw.items() if name in names}
