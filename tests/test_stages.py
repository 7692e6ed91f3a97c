"""Staged runs: the prepared stage alone trains nothing; a BROKEN structural check with -x stops the
session before training; a failure in the trained stage leaves the structural verdicts standing;
progress shows in pytest's terminal output."""

import xml.etree.ElementTree as ElementTree
from dataclasses import replace
from pathlib import Path

import pytest

from harness import files, progress
from harness.recipe import record
from harness.run import artifacts
from tests.planted import FIXTURE, run_suites

pytestmark = pytest.mark.slow


def _events(log: Path) -> list[str]:
    return log.read_text().split("\n") if log.exists() else []


def _verdicts(junit: Path) -> dict[str, str]:
    verdicts = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        verdicts[case.get("classname").rsplit(".", 1)[-1] + "::" + case.get("name")] = kinds[0] if kinds else "passed"
    return verdicts


def test_the_structural_stage_trains_nothing_and_shows_its_progress(tmp_path, shared_models_dir):
    log = tmp_path / "events.log"
    done = run_suites(tmp_path / "cache", shared_models_dir, "suites", "-m", "yoda_structural", "--yoda-fresh",
                      "-p", "tests.training_log", "--yoda-baselines-dir", str(tmp_path / "baselines"),
                      YODA_HARNESS_TRAIN_LOG=str(log), YODA_HARNESS_QUIET="0")
    assert done.returncode == 0, done.stdout[-3000:]
    assert not any(line.startswith("train ") for line in _events(log)), "the structural stage trained"
    published = sorted(p.name for p in (tmp_path / "cache" / "runs").iterdir() if not p.name.startswith("."))
    assert len(published) == 1 and published[0].endswith("-prepared"), published
    manifest = files.read_json(tmp_path / "cache" / "runs" / published[0] / artifacts.MANIFEST)
    assert manifest["stage"] == "prepared" and "metrics" not in manifest
    # Progress reaches the terminal although the recipe runs inside a session fixture (capture on).
    assert "[harness] trainer done in" in done.stdout, done.stdout[-3000:]


def test_a_broken_structural_invariant_with_x_stops_before_training(tmp_path, shared_models_dir):
    log = tmp_path / "events.log"
    done = run_suites(tmp_path / "cache", shared_models_dir, "suites", "-x", "--yoda-fresh", "-p", "tests.regressions",
                      "-p", "tests.training_log", "--yoda-baselines-dir", str(tmp_path / "baselines"),
                      YODA_HARNESS_TRAIN_LOG=str(log), YODA_HARNESS_INJECT="eos-masked")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-3000:]
    assert "the collator masked EOS" in done.stdout
    assert not any(line.startswith("train ") for line in _events(log)), "training started after a BROKEN check"


def test_a_trained_stage_failure_leaves_the_structural_verdicts_standing(tmp_path, shared_models_dir,
                                                                         small_overrides):
    junit = tmp_path / "junit.xml"
    done = run_suites(tmp_path / "cache", shared_models_dir, "suites", "--yoda-fresh", *small_overrides,
                      "-p", "tests.regressions", "--yoda-baselines-dir", str(tmp_path / "baselines"),
                      f"--junitxml={junit}", YODA_HARNESS_INJECT="generate-crashes")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-3000:]
    verdicts = _verdicts(junit)
    structural = {name: v for name, v in verdicts.items()
                  if name.split("::")[0] in ("test_labels", "test_trainable", "test_memory", "test_tokens")
                  and "adapters_changed" not in name and "optimizer_steps" not in name}
    assert structural and all(v in ("passed", "skipped") for v in structural.values()), structural
    # The crash is one BROKEN (the first check that needed the trained stage); the others are "not run".
    trained = [name for name in verdicts if name.startswith(("test_bleu", "test_stopping"))]
    outcomes = [verdicts[name] for name in trained]
    assert trained and outcomes.count("error") <= 1 and set(outcomes) <= {"error", "skipped"}, outcomes
    assert sum(v in ("error", "failed") for v in verdicts.values()) == 1, verdicts
    assert "the recipe failed in phase generate: ValueError: The following `model_kwargs` are not used by the " \
           "model: ['token_type_ids'] (injected)" in done.stdout


def test_the_training_line_says_step_loss_and_eta():
    assert progress.training_line(120, 360, 5.9123, 40.0) == "train step 120/360 loss 5.912 elapsed 40s ETA 80s"
    assert progress.training_line(0, 0, None, 1.0) == "train step 0/? elapsed 1s"


def test_a_trained_run_keeps_the_warnings_its_published_prepared_stage_recorded(tmp_path):
    """Import-time warnings fire once per process: a session that reused the prepared stage
    imported the libraries outside any recording, and its trained run must not lose them."""
    from harness.recipe.libwarnings import LibraryWarning
    from harness.run import artifacts, stages
    jit = {"library": "torch 2.13.0+cpu", "category": "DeprecationWarning", "message": "`torch.jit.script_method` is deprecated.",
           "settings": [], "count": 14, "where": "torch/jit/_script.py:365"}
    checkpointing = {"library": "transformers 5.23.0", "category": "FutureWarning", "settings": [], "count": 1,
                     "message": "`gradient_checkpointing` is deprecated and will be removed in v6.",
                     "where": "transformers/training_args.py:1541"}
    fixture = record.load(files.read_json(FIXTURE / artifacts.MANIFEST))
    prepared = tmp_path / ("tiny-abc" + stages.PREPARED)
    prepared.mkdir()
    files.write_json(prepared / artifacts.MANIFEST, dict(fixture.to_json(), status=artifacts.COMPLETE,
                                                         library_warnings=[jit, checkpointing]))
    jit, checkpointing = LibraryWarning.from_dict(jit), LibraryWarning.from_dict(checkpointing)  # as the record reads them
    trained = replace(fixture, library_warnings=[checkpointing])
    trained = stages._with_published_preparation_warnings(trained, tmp_path, "tiny-abc")
    assert trained.library_warnings == [checkpointing, jit]
    trained = stages._with_published_preparation_warnings(trained, tmp_path, "tiny-abc")  # nothing twice
    assert trained.library_warnings == [checkpointing, jit]
    unprepared = replace(fixture, library_warnings=[checkpointing])
    # no prepared stage: as it was
    unprepared = stages._with_published_preparation_warnings(unprepared, tmp_path, "tiny-other")
    assert unprepared.library_warnings == [checkpointing]
