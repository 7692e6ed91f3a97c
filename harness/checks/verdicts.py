"""Verdicts a reader can act on: BROKEN (an invariant failed) apart from CHANGED (a comparison
with the baseline entry is outside its band, or was refused because the inputs differ).

The convention: a check carrying the pytest marker `comparison` is a comparison; every other
check of the recipe (every check that uses the session's profile, as all of suites/ do) is an
invariant. `Verdicts` is a plugin object (registered by `harness.checks.plugin`) that
classifies each failure as it is reported, and at the end of the session

- prints both lists in the terminal summary, BROKEN first, under one line a reader can act on
  ("nothing broke; 3 things changed: peak_gpu_allocated_mb 450.3 -> 871.7 MB, ..."),
- adds `check_kind` / `verdict` properties to each test case in JUnit XML and the counts and the
  line as test-suite properties,
- writes the same summary as Markdown (`--yoda-summary-md PATH`, and `$GITHUB_STEP_SUMMARY` when set),
- with `--yoda-gate broken`, turns the exit status to 0 when every failure is a comparison.

It is also the session's one tally of outcomes: every test's (the HTML report's suite outcomes, the
result JSON's checks and counts: harness.checks.result) and each check of the recipe's, from reports
alone, so under pytest-xdist the controller, which runs no check, counts every worker's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import markers
from harness.checks import result as session_result
from harness.markers import COMPARISON as COMPARISON_MARKER

BROKEN, CHANGED = "BROKEN", "CHANGED"
GATES = ("all", "broken")
PLUGIN_NAME = "yoda-harness-verdicts"
# user_properties a comparison check records: its one-line change, and what it was compared with.
CHANGE_PROPERTY, BASELINE_PROPERTY = "change", "baseline"
# user_properties this plugin adds to every check of the recipe (JUnit XML shows them).
KIND_PROPERTY, VERDICT_PROPERTY = "check_kind", "verdict"
# A comparison that was asked for and not made (no entry, no cross-device band, refused inputs),
# with its cause; and the one check that reports a crash of the recipe (the rest say "not run").
NOT_COMPARED_PROPERTY, CRASH_PROPERTY, NOT_RUN_PROPERTY = "not_compared", "recipe_crash", "not_run"
# The crash's phase and root cause, beside its line (the result JSON names both).
CRASH_PHASE_PROPERTY, CRASH_ROOT_PROPERTY = "recipe_crash_phase", "recipe_crash_root"
# The check's yoda_check marker (headline, settings, detail marker) as JSON: the controller has no items.
CHECK_PROPERTY = "yoda_check"
# A check of the recipe is one that needs the session's profile (every check in suites/ does);
# the harness's own tests are not classified.
RECIPE_FIXTURE = "harness_profile"


@dataclass(frozen=True)
class Failure:
    nodeid: str
    verdict: str  # BROKEN | CHANGED
    summary: str  # one line for the headline: what changed, or which check broke and why
    message: str = ""  # the check's own first line, where the summary does not already say it

    def line(self) -> str:
        return f"{self.nodeid}: {self.message or self.summary}"


def not_compared(request, reason: str, cause: str | None = None):
    """Skip a comparison that cannot be made here, and tell the verdict why (`cause`, grouped in the
    headline): a comparison not made is never counted as one that held."""
    request.node.user_properties.append((NOT_COMPARED_PROPERTY, cause or reason))
    pytest.skip(f"not compared: {reason}")


def kind_of(keywords) -> str:
    """'comparison' or 'invariant', from a test item's or report's keywords."""
    return "comparison" if COMPARISON_MARKER in keywords else "invariant"


def is_harness_check(item) -> bool:
    return RECIPE_FIXTURE in getattr(item, "fixturenames", ())


def verdict_of(keywords) -> str:
    return CHANGED if kind_of(keywords) == "comparison" else BROKEN


def headline(broken: list[Failure], changed: list[Failure], not_made: dict[str, str] | None = None,
             not_run: dict[str, str] | None = None, compared: int | None = None) -> str:
    """'nothing broke; 2 things changed: bleu 1.83 -> 0.9, adapter_dtype BF16 -> F32'.

    "nothing changed" only when no comparison was left unmade: otherwise the line says how many
    were not made and why ('nothing broke; 29 comparisons not made: no baseline entry for ...').
    """
    def part(failures: list[Failure], verb: str) -> str:
        if not failures:
            return f"nothing {verb}"
        noun = "thing" if len(failures) == 1 else "things"
        return f"{len(failures)} {noun} {verb}: " + ", ".join(f.summary for f in failures)

    parts = [part(broken, "broke")]
    if compared == 0 and not (changed or not_made or not_run):
        parts.append("no comparison with the baseline was made (none was selected)")
    elif changed or not (not_made or not_run):
        parts.append(part(changed, "changed"))
    if not_run:
        parts.append(_counted(not_run, "check", "not run"))
    if not_made:
        parts.append(_counted(not_made, "comparison", "not made"))
    return "; ".join(parts)


def _counted(causes: dict[str, str], noun: str, what: str) -> str:
    """'29 comparisons not made: no baseline entry for ...' (causes grouped, the commonest first)."""
    from collections import Counter

    counts = Counter(causes.values()).most_common()
    plural = noun if len(causes) == 1 else noun + "s"
    if len(counts) == 1:
        return f"{len(causes)} {plural} {what}: {counts[0][0]}"
    return f"{len(causes)} {plural} {what}: " + "; ".join(f"{n}: {cause}" for cause, n in counts)


def _summary_of(report) -> tuple[str, str]:
    """(headline part, message): the recipe's crash or the change a comparison recorded, else the
    check's name and the first line of its assertion (what broke)."""
    for name, value in report.user_properties:
        if name in (CHANGE_PROPERTY, CRASH_PROPERTY):
            return str(value), ""
    test = report.nodeid.split("::")[-1]
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    text = (text.strip().splitlines() or ["failed"])[0]
    text = text.removeprefix("AssertionError: ").removeprefix("Failed: ")
    text = f"{text[:140]}{'...' if len(text) > 140 else ''}"
    return f"{test} ({text})", text


def _message_of(report, properties: dict) -> str:
    """A failure's or skip's first lines: the recipe's crash line where the check met it (not its traceback)."""
    if report.failed and CRASH_PROPERTY in properties:
        return str(properties[CRASH_PROPERTY])
    if report.passed:
        return ""
    if report.skipped and isinstance(report.longrepr, (tuple, list)):
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    else:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[:6])[:1500]


def _collection_error(report) -> str:
    """The error lines of a collection failure ('ModuleNotFoundError: ...'), not the traceback above them."""
    lines = [line for line in str(report.longrepr).splitlines() if line.strip()]
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return "\n".join(errors[-6:] or lines[-1:])[:1500]


def _detail(message: str, after: str) -> str:
    """The text of `message` after the marker `after`, up to the first '. ' (the token a check says was misread)."""
    if not after or after not in message:
        return ""
    return message.split(after, 1)[1].split(". ", 1)[0].splitlines()[0].strip()[:200]


class Verdicts:
    """The session's failures, classified; the summary, JUnit properties and the gate."""

    def __init__(self, config):
        self.config = config
        self.gate = config.getoption("--yoda-gate", "all")
        self.summary_md = config.getoption("--yoda-summary-md", None)
        self.require_comparisons = config.getoption("--yoda-require-comparisons", False)
        self.failures: dict[str, Failure] = {}
        self.not_made: dict[str, str] = {}  # node id -> why the comparison was not made
        self.not_run: dict[str, str] = {}  # node id -> the crash that kept the check from running
        self.kinds: dict[str, str] = {}  # node id of each check of the recipe -> invariant | comparison
        self.results: dict[str, str] = {}  # node id of each check of the recipe -> passed | failed | skipped
        # suite file -> [(node id, report outcome)] of every test: the HTML report's suite outcomes.
        self.outcomes: dict[str, list[tuple[str, str]]] = {}
        self.tests: dict[str, session_result.Check] = {}  # every test's outcome: the result JSON
        self.crash_cause: tuple[str, str] | None = None  # (phase, root cause) of the recipe's crash
        self.crashed_check: str | None = None  # node id of the check that met the crash
        self.facts: dict[str, dict] = {}  # node id -> its yoda_check marker's facts
        self.compared: set[str] = set()  # comparisons that ran to a verdict ("nothing changed" needs one)
        self.failed_requirement = False
        self.crash: str | None = None  # the recipe's crash, in one line (harness.checks.crash)
        self.compared_with: str | None = None
        self.gated_off = False

    # ---------------------------------------------------------------- collecting
    @property
    def broken(self) -> list[Failure]:
        return [f for f in self.failures.values() if f.verdict == BROKEN]

    @property
    def changed(self) -> list[Failure]:
        return [f for f in self.failures.values() if f.verdict == CHANGED]

    def headline(self) -> str:
        return headline(self.broken, self.changed, self.not_made, self.not_run, len(self.compared))

    def failed(self, kind: str) -> list[str]:
        """Node ids of the failed checks of the recipe of this kind (invariant | comparison)."""
        return [node for node, outcome in self.results.items() if outcome == "failed" and self.kinds[node] == kind]

    def checked_anything(self) -> bool:
        return any(outcome in ("passed", "failed") for outcome in self.results.values())

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if not is_harness_check(item):
            return  # e.g. the harness's own tests: neither BROKEN nor CHANGED
        report = outcome.get_result()
        added = []
        if report.when == "setup":
            added.append((KIND_PROPERTY, kind_of(item.keywords)))
            facts = markers.check_facts(item)
            if facts is not None:
                added.append((CHECK_PROPERTY, json.dumps(facts)))
        if report.failed:
            # A crash of the recipe is BROKEN whichever check met it first, a comparison too.
            crashed = any(name == CRASH_PROPERTY for name, _ in report.user_properties)
            added.append((VERDICT_PROPERTY, BROKEN if crashed else verdict_of(item.keywords)))
        # junitxml writes the teardown report's user_properties (copied from the item's), and
        # this report travels to the xdist controller with its own: add them to both.
        item.user_properties.extend(added)
        report.user_properties.extend(added)

    def pytest_runtest_logreport(self, report):
        properties = dict(report.user_properties)
        self._count(report, properties)
        if KIND_PROPERTY not in properties:
            return
        self.kinds[report.nodeid] = properties[KIND_PROPERTY]
        if report.failed:
            self.results[report.nodeid] = "failed"
        elif report.outcome == "skipped":
            self.results.setdefault(report.nodeid, "skipped")
        elif report.when == "call":
            self.results.setdefault(report.nodeid, "passed")
        if properties[KIND_PROPERTY] == "comparison" and report.when == "call" and not report.skipped:
            self.compared.add(report.nodeid)  # a comparison that ran to a verdict
        if BASELINE_PROPERTY in properties:
            self.compared_with = str(properties[BASELINE_PROPERTY])
        if report.skipped and NOT_COMPARED_PROPERTY in properties:
            self.not_made[report.nodeid] = str(properties[NOT_COMPARED_PROPERTY])
        if report.skipped and NOT_RUN_PROPERTY in properties:
            self.not_run[report.nodeid] = str(properties[NOT_RUN_PROPERTY])
        if CHECK_PROPERTY in properties:
            self.facts[report.nodeid] = json.loads(properties[CHECK_PROPERTY])
        if report.failed and CRASH_PROPERTY in properties:
            self.crash, self.crashed_check = str(properties[CRASH_PROPERTY]), report.nodeid
            self.crash_cause = (str(properties.get(CRASH_PHASE_PROPERTY, "")), str(properties.get(CRASH_ROOT_PROPERTY, "")))
        if report.failed and report.nodeid not in self.failures:
            # A crash of the recipe is BROKEN whichever check met it first.
            comparison = properties[KIND_PROPERTY] == "comparison" and CRASH_PROPERTY not in properties
            self.failures[report.nodeid] = Failure(report.nodeid, CHANGED if comparison else BROKEN,
                                                   *_summary_of(report))

    def pytest_collectreport(self, report):
        """A test module that cannot be collected (an import error under a new release) is an error of its
        suite file in the result JSON: its checks never ran."""
        if report.failed:
            self.tests.setdefault(report.nodeid, session_result.Check(report.nodeid, "error", _collection_error(report)))

    def _count(self, report, properties: dict) -> None:
        """Every test's outcome: as pytest reports it per suite file (a call, a skip, a failure in any
        phase), and one per test for the result JSON (a failure outside the call is an error, the first
        failure stands)."""
        if report.when == "call" or report.outcome != "passed":
            suite = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
            self.outcomes.setdefault(suite, []).append((report.nodeid, report.outcome))
        if report.when != "call" and report.passed:
            return
        earlier = self.tests.get(report.nodeid)
        if earlier is not None and earlier.outcome in ("failed", "error"):
            return
        outcome = "error" if report.failed and report.when != "call" else report.outcome
        self.tests[report.nodeid] = session_result.Check(report.nodeid, outcome, _message_of(report, properties))

    def session_result(self, exit_status: int, profile: str | None, **run_facts) -> session_result.SessionResult:
        """The session's result as this tally holds it; `run_facts`: what the session's run adds
        (run, library_warnings, new_library_warnings)."""
        from collections import Counter

        checks = [self._check(test) for test in self.tests.values()]
        counts = Counter(check.outcome for check in checks)
        crash = session_result.Crash(self.crash, *(self.crash_cause or ("", ""))) if self.crash else None
        return session_result.SessionResult(
            profile=profile, exit_status=int(exit_status), headline=self.headline() if self.kinds else None,
            broken=[self._finding(f) for f in self.broken], changed=[self._finding(f) for f in self.changed],
            not_compared=len(self.not_made), not_compared_causes=dict(Counter(self.not_made.values()).most_common()),
            not_run=len(self.not_run), crash=crash, counts={k: counts[k] for k in session_result.OUTCOMES},
            checks=checks, compared_with=self.compared_with, **run_facts)

    def _check(self, test: session_result.Check) -> session_result.Check:
        """A test's outcome with, for a check of the recipe, its kind, verdict and marker's facts."""
        from dataclasses import replace

        kind = self.kinds.get(test.nodeid)
        if kind is None:
            return test
        facts = self.facts.get(test.nodeid, {})
        failure = self.failures.get(test.nodeid)
        verdict = failure.verdict if failure else session_result.NOT_RUN if test.nodeid in self.not_run else test.outcome
        return replace(test, kind=kind, verdict=verdict, headline=facts.get("headline", ""),
                       detail=_detail(test.message, facts.get("detail_after", "")),
                       settings=tuple(facts.get("settings", ())), not_run=self.not_run.get(test.nodeid),
                       crash=self.crash if test.nodeid == self.crashed_check else None)

    def _finding(self, failure: Failure) -> session_result.Finding:
        name = failure.nodeid.split("[", 1)[0].rsplit("::", 1)[-1]
        return session_result.Finding(failure.nodeid, self.facts.get(failure.nodeid, {}).get("headline", name),
                                      failure.summary, failure.message)

    # ---------------------------------------------------------------- the end of the session
    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file in its own sessionfinish
    def pytest_sessionfinish(self, session, exitstatus):
        if getattr(self.config, "workerinput", None) is not None:
            return  # an xdist worker: the controller holds every report and writes the summary
        if not self.kinds:
            return  # no check of the recipe ran (the harness's own tests, say): nothing to summarise
        self._require_comparisons(session)
        self._junit_properties()
        self._apply_gate(session)
        self._write_markdown()

    def _require_comparisons(self, session) -> None:
        """--yoda-require-comparisons: a comparison not made fails the session (a gate that must compare)."""
        if self.require_comparisons and self.not_made:
            self.failed_requirement = True
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _apply_gate(self, session) -> None:
        only_changes = self.failures and not self.broken and session.testsfailed == len(self.failures)
        if (self.gate == "broken" and session.exitstatus == pytest.ExitCode.TESTS_FAILED and only_changes
                and not self.failed_requirement):
            session.exitstatus = pytest.ExitCode.OK
            self.gated_off = True

    def _junit_properties(self) -> None:
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        xml.add_global_property("yoda_harness_broken", str(len(self.broken)))
        xml.add_global_property("yoda_harness_changed", str(len(self.changed)))
        xml.add_global_property("yoda_harness_not_compared", str(len(self.not_made)))
        xml.add_global_property("yoda_harness_not_run", str(len(self.not_run)))
        xml.add_global_property("yoda_harness_verdict", self.headline())
        if self.crash:
            xml.add_global_property("yoda_harness_crash", self.crash)

    def markdown(self) -> str:
        lines = [f"### yoda-harness: {self.headline()}", ""]
        for title, failures in (("BROKEN", self.broken), ("CHANGED", self.changed)):
            lines.append(f"**{title}** ({len(failures)})" + ("" if failures else ": none"))
            lines += [f"- `{f.nodeid}`: {f.summary}" for f in failures]
            lines.append("")
        if self.compared_with:
            lines += [f"Compared with {self.compared_with}.", ""]
        if self.failed_requirement:
            lines += [f"`--yoda-require-comparisons`: {len(self.not_made)} comparisons not made: this job fails.", ""]
        if self.gated_off:
            lines += ["`--yoda-gate broken`: the CHANGED checks did not fail this job.", ""]
        return "\n".join(lines)

    def _write_markdown(self) -> None:
        text = self.markdown()
        if self.summary_md:
            path = Path(self.summary_md)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as handle:  # GitHub appends every step's part
                handle.write(text + "\n")

    def pytest_terminal_summary(self, terminalreporter):
        if not self.kinds:
            return
        terminalreporter.write_sep("=", "yoda-harness verdict")
        terminalreporter.write_line(self.headline(), red=bool(self.broken),
                                    yellow=not self.broken and bool(self.changed or self.not_made))
        for title, failures in (("BROKEN (an invariant failed)", self.broken),
                                ("CHANGED (a difference from the baseline)", self.changed)):
            if failures:
                terminalreporter.write_line(f"{title}:")
                for failure in failures:
                    terminalreporter.write_line(f"  {failure.line()}")
        if self.compared_with:
            terminalreporter.write_line(f"compared with {self.compared_with}")
        if self.failed_requirement:
            terminalreporter.write_line(f"--yoda-require-comparisons: {len(self.not_made)} comparisons not made: "
                                        "the session fails", red=True)
        if self.gated_off:
            terminalreporter.write_line(f"--yoda-gate broken: {len(self.changed)} CHANGED did not gate; exit status 0",
                                        yellow=True)

    def as_dict(self) -> dict:
        """What the HTML report shows: both lists, BROKEN first, and the headline."""
        return {"headline": self.headline(), "compared_with": self.compared_with, "gated_off": self.gated_off,
                "broken": [vars(f) for f in self.broken], "changed": [vars(f) for f in self.changed],
                "not_compared": len(self.not_made), "not_run": len(self.not_run), "crash": self.crash}


def register(config) -> None:
    """Called from `harness.checks.plugin.pytest_configure`."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(Verdicts(config), PLUGIN_NAME)


def collected(config) -> dict | None:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    return plugin.as_dict() if plugin is not None else None
