"""`python -m harness baselines record`: one session of the suites per seed, then one entry from their runs,
refused when a session's invariant checks failed."""

import json
import shutil
from pathlib import Path

import pytest

from harness import cli
from harness.checks import baselines
from harness.versions import recording
from tests.planted import FIXTURE, ROOT, plant_run

GOOD_AND_LABELS = ["suites/test_memory.py::test_embeddings_and_head_stay_unquantized",
                   "suites/test_labels.py::test_every_eos_keeps_its_label"]


def _seed_of(pytest_args: list[str], recipe_seed: int) -> int:
    """The seed a session runs: its last `training.seed` override, else the recipe's."""
    seeds = [int(arg.rsplit("=", 1)[1]) for arg in pytest_args if arg.startswith("training.seed=")]
    return seeds[-1] if seeds else recipe_seed


class FakeSessions:
    """Sessions that 'run' the fixture run under the seed they were given, with a BLEU per seed."""

    def __init__(self, tmp_path: Path, refusals: dict[int, str] | None = None):
        self.tmp_path, self.refusals, self.calls = tmp_path, refusals or {}, []

    def __call__(self, pytest_args: list[str], force: bool) -> recording.SeedSession:
        self.calls.append(pytest_args)
        seed = _seed_of(pytest_args, recipe_seed=0)
        directory = Path(shutil.copytree(FIXTURE, self.tmp_path / f"run-seed{seed}", dirs_exist_ok=True))
        run = json.loads((directory / "run.json").read_text())
        run["config"]["training"]["seed"], run["key"] = seed, f"tiny-seed{seed}"
        run["metrics"]["tuned"]["vs_translation_extra"]["bleu"] = 1.8 + 0.2 * seed
        (directory / "run.json").write_text(json.dumps(run))
        return recording.SeedSession(1, str(directory), self.refusals.get(seed))


def test_record_runs_the_recipes_seed_then_the_next_ones_each_in_a_session_and_records_their_runs(tmp_path):
    sessions = FakeSessions(tmp_path)
    overrides = ["--yoda-override", "training.learning_rate=0.001"]
    path, lines = recording.record(3, tmp_path / "baselines", overrides, profile="tiny", session=sessions, log=lambda _: None)
    # The session's own arguments in each, the seeds after the recipe's own in the second and third.
    assert [_seed_of(args, recipe_seed=None) for args in sessions.calls] == [None, 1, 2]
    for args in sessions.calls:
        assert "training.learning_rate=0.001" in args and args[args.index("--yoda-profile") + 1] == "tiny"
    assert path == tmp_path / "baselines" / "tiny.json"
    (entry,) = baselines.load(path, "tiny")["entries"]
    assert [r["seed"] for r in entry["runs"]] == [0, 1, 2]
    assert entry["metrics"]["bleu"]["samples"] == pytest.approx([1.8, 2.0, 2.2])
    assert entry["metrics"]["bleu"]["spread"] == pytest.approx(0.2)
    assert entry["provenance"]["forced"] is False and entry["provenance"]["failed_invariants"] == []


def test_a_refused_session_stops_the_recording_and_nothing_is_written(tmp_path):
    refusal = "1 invariant check(s) failed (BROKEN): suites/test_labels.py::test_every_eos_keeps_its_label"
    sessions = FakeSessions(tmp_path, refusals={1: refusal})
    with pytest.raises(recording.RecordError, match=r"not recorded: session 2 \(seed 1, exit 1\): 1 invariant check"):
        recording.record(3, tmp_path / "baselines", [], session=sessions, log=lambda _: None)
    assert len(sessions.calls) == 2, "the recording went on after a refused session"
    assert not (tmp_path / "baselines" / "tiny.json").exists()


def test_a_session_that_left_no_trained_run_is_refused(tmp_path):
    def structural(pytest_args, force):
        return recording.SeedSession(0, None, None)

    with pytest.raises(recording.RecordError, match="left no trained run"):
        recording.record(2, tmp_path, ["-m", "yoda_structural"], session=structural, log=lambda _: None)


@pytest.mark.parametrize("option, instead", [("--yoda-update-baselines", "it records the entry itself"),
                                             ("--yoda-profile=tiny", "--profile"),
                                             ("--yoda-force-baselines", "--force")])
def test_record_refuses_the_options_it_sets_itself(tmp_path, capsys, option, instead):
    assert cli.main(["baselines", "record", "--baselines-dir", str(tmp_path), "--", option]) == 2
    assert instead in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_the_suites_are_selected_unless_the_arguments_select_checks(tmp_path):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "test_labels.py").write_text("")
    assert recording.suites_selection(["-m", "yoda_structural"], tmp_path) == ["suites"]
    assert recording.suites_selection(["suites/test_labels.py::test_x"], tmp_path) == []
    assert recording.suites_selection(["--pyargs", "harness.suites"], tmp_path) == []
    assert recording.suites_selection([], tmp_path / "elsewhere") == ["--pyargs", "harness.suites"]


def _mask_every_eos(batch: dict) -> None:
    eos = 32000
    batch["labels"] = [[-100 if token == eos else label for token, label in zip(ids, labels)]
                       for ids, labels in zip(batch["input_ids"], batch["labels"])]


def _seed(seed: int):
    def edit(manifest: dict) -> None:
        manifest["config"]["training"]["seed"] = seed
    return edit


@pytest.mark.slow
def test_record_over_planted_runs_refuses_a_broken_seed_and_force_records_it(tmp_path, shared_models_dir, monkeypatch):
    """Real sessions (each in its own process) over runs planted for seeds 0 and 1; seed 1's masks
    every EOS label, so its invariant check fails: refused, naming it; with --force, recorded as forced."""
    cache, baselines_dir = tmp_path / "cache", tmp_path / "baselines"
    plant_run(cache, shared_models_dir)
    plant_run(cache, shared_models_dir, edit=_seed(1), edit_batch=_mask_every_eos, overrides={"training.seed": 1})
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("YODA_HARNESS_MODELS_DIR", str(shared_models_dir))
    monkeypatch.setenv("YODA_HARNESS_QUIET", "1")
    monkeypatch.delenv("YODA_HARNESS_PROFILE", raising=False)
    pytest_args = ["--yoda-cache-dir", str(cache), "-p", "no:cacheprovider", *GOOD_AND_LABELS]
    with pytest.raises(recording.RecordError) as refused:
        recording.record(2, baselines_dir, pytest_args, profile="tiny", log=lambda _: None)
    assert ("session 2 (seed 1, exit 1): 1 invariant check(s) failed (BROKEN): "
            "suites/test_labels.py::test_every_eos_keeps_its_label. Fix them; or, if this is intended, add --force"
            in str(refused.value))
    assert not (baselines_dir / "tiny.json").exists(), "a baseline was written from a broken run"

    recording.record(2, baselines_dir, pytest_args, profile="tiny", force=True, log=lambda _: None)
    (entry,) = baselines.load(baselines_dir / "tiny.json", "tiny")["entries"]
    assert [r["seed"] for r in entry["runs"]] == [0, 1]
    assert entry["provenance"]["forced"] is True
    assert entry["provenance"]["failed_invariants"] == ["suites/test_labels.py::test_every_eos_keeps_its_label"]


def test_a_session_whose_run_is_not_of_the_seed_asked_for_is_refused(tmp_path):
    sessions = FakeSessions(tmp_path)

    def same_run_again(pytest_args, force):
        return sessions(["--yoda-override", "training.seed=0"] if sessions.calls else pytest_args, force)

    with pytest.raises(recording.RecordError, match=r"session 2 asked for seed 1 and its run .* has seed 0"):
        recording.record(2, tmp_path / "baselines", [], session=same_run_again, log=lambda _: None)
