"""No green without checks: each hole through which a session could pass having checked nothing,
pass a broken input off as a skip, record a baseline from a bad run, or reuse a stale run."""

import dataclasses
import json
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from harness import env, files
from harness.recipe import profiles, record
from harness.recipe.models import apply_special_tokens
from harness.recipe.models import smollm2 as smollm2_models
from harness.recipe.models.phi3 import PHI3_SPECIAL_TOKENS
from harness.run import artifacts, stages
from tests.planted import plant_run, run_suites, tree_digest

pytest_plugins = ["pytester"]

USES_THE_RUN = "def test_uses_run(record): pass\n"


@pytest.fixture
def no_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("YODA_HARNESS_PROFILE", raising=False)


@pytest.fixture
def gpu_without_weights(monkeypatch, tmp_path):
    """A GPU machine (as far as profile choice can tell) with neither Phi-3's weights nor the GGUF."""
    monkeypatch.setattr(env, "gpu_available", lambda: True)
    monkeypatch.setattr(profiles.phi3_models, "phi3_cached", lambda path=None, model_id=None: False)
    monkeypatch.setenv(smollm2_models.GGUF_ENV, str(tmp_path / "missing.gguf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("YODA_HARNESS_PROFILE", raising=False)


# ------------------------------------------------------------------ 1. nothing passes with nothing checked
@pytest.mark.parametrize("how", ["option", "variable"])
def test_a_named_profile_that_cannot_run_here_is_a_usage_error(pytester, monkeypatch, no_gpu, how):
    pytester.makepyfile(USES_THE_RUN)
    if how == "option":
        result = pytester.runpytest_inprocess("--yoda-profile", "smollm2")
    else:
        monkeypatch.setenv("YODA_HARNESS_PROFILE", "smollm2")
        result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    named = "--yoda-profile" if how == "option" else "$YODA_HARNESS_PROFILE"
    lines = [line for line in result.stderr.lines if "yoda-harness" in line]
    assert len(lines) == 1 and (f"{named} smollm2: cannot run here: profile 'smollm2': its trained stage needs a "
                                "CUDA GPU") in lines[0]


STRUCTURAL_AND_TRAINED = (
    "import pytest\n"
    "@pytest.mark.yoda_structural\n"
    "def test_structural(harness_profile): assert harness_profile.name == 'smollm2'\n"
    "def test_trained(harness_profile): pass\n"
)


def test_a_stage_the_profile_cannot_run_here_is_a_usage_error_and_its_other_stage_runs(pytester, no_gpu):
    """smollm2 on a CPU: the prepared stage runs (`-m yoda_structural`); asking for the trained stage
    too is a usage error naming the stage, never a session that turns green on half of it."""
    pytester.makepyfile(STRUCTURAL_AND_TRAINED)
    whole = pytester.runpytest_inprocess("--yoda-profile", "smollm2")
    assert whole.ret == pytest.ExitCode.USAGE_ERROR
    whole.stderr.fnmatch_lines(["*--yoda-profile smollm2: cannot run here: profile 'smollm2': its trained stage "
                                "needs a CUDA GPU and none is visible (its prepared stage runs here: "
                                "`-m yoda_structural`)*"])
    structural = pytester.runpytest_inprocess("--yoda-profile", "smollm2", "-m", "yoda_structural")
    assert structural.ret == pytest.ExitCode.OK
    structural.assert_outcomes(passed=1, deselected=1)
    by_keyword = pytester.runpytest_inprocess("--yoda-profile", "smollm2", "-k", "structural")
    assert by_keyword.ret == pytest.ExitCode.OK  # what is left after any deselection decides


def test_phi3_without_its_weights_is_a_usage_error(pytester, gpu_without_weights):
    pytester.makepyfile(USES_THE_RUN)
    result = pytester.runpytest_inprocess("--yoda-profile", "phi3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--yoda-profile phi3: cannot run here: microsoft/Phi-3-mini-4k-instruct is not in "
                                 "the local HF cache and HF_HUB_OFFLINE=1*"])


def test_an_unrunnable_profile_does_not_stop_sessions_that_do_not_use_the_run(pytester, no_gpu):
    pytester.makepyfile("def test_unrelated(): pass")
    result = pytester.runpytest_inprocess("--yoda-profile", "smollm2")
    result.assert_outcomes(passed=1)


def test_auto_on_a_gpu_without_the_gguf_chooses_tiny_and_says_why(gpu_without_weights, tmp_path):
    choice = profiles.choose_auto(profiles.ModelOptions(models_dir=tmp_path))
    assert choice.name == "tiny"
    assert set(choice.passed_over) == {"phi3", "smollm2"}
    assert "missing.gguf" in choice.passed_over["smollm2"] and "no such file" in choice.passed_over["smollm2"]
    assert choice.describe().startswith("auto -> tiny (not phi3: ")


def test_auto_announces_its_choice_before_any_check(pytester, gpu_without_weights, tmp_path):
    pytester.makepyfile(USES_THE_RUN)
    # A cache of its own: under CI the suites' run is already cached, and would be announced as reused.
    result = pytester.runpytest_inprocess("--collect-only", "-q", "--yoda-cache-dir", str(tmp_path / "cache"))
    result.stdout.fnmatch_lines(["yoda-harness: auto -> tiny (not phi3: *; not smollm2: *no such file*)",
                                 "yoda-harness: profile tiny: running the recipe (no finished run tiny-*"])


def test_a_session_whose_checks_all_skipped_fails(pytester, no_gpu):
    pytester.makepyfile(
        """
        import pytest

        def test_first(harness_profile):
            pytest.skip("cannot apply here")

        def test_second(harness_profile):
            pytest.skip("cannot apply here either")
        """
    )
    result = pytester.runpytest_inprocess("--yoda-profile", "tiny")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*yoda-harness: no harness check ran to a verdict (2 skipped): nothing was "
                                 "checked, so this session fails (exit 1)*"])


def test_one_check_with_a_verdict_is_enough(pytester, no_gpu):
    pytester.makepyfile(
        """
        import pytest

        def test_skips(harness_profile):
            pytest.skip("cannot apply here")

        def test_passes(harness_profile):
            pass
        """
    )
    result = pytester.runpytest_inprocess("--yoda-profile", "tiny")
    assert result.ret == pytest.ExitCode.OK


# ------------------------------------------------------------------ 2. wrong inputs are errors
def _outcomes(junit: Path) -> dict[str, str]:
    outcomes = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return outcomes


@pytest.mark.slow
def test_a_changed_tokenizer_eos_fails_every_check_of_the_run_and_names_the_token(tmp_path, shared_models_dir):
    junit = tmp_path / "junit.xml"
    done = run_suites(tmp_path / "cache", shared_models_dir, "suites", "--yoda-fresh", "-p", "tests.regressions",
                      "--yoda-baselines-dir", str(tmp_path / "baselines"), f"--junitxml={junit}", "-q",
                      YODA_HARNESS_INJECT="tokenizer-eos-changed")
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "eos_token is '<|end|>', expected '<|endoftext|>'" in output
    assert f"transformers {env.package_versions()['transformers']}" in output
    outcomes = _outcomes(junit)
    skipped = [name for name, outcome in outcomes.items() if outcome == "skipped"]
    # Only checks that cannot apply on a CPU at all skip; every other one errors on the input.
    assert all("peak" in name for name in skipped), skipped
    assert sum(outcome == "error" for outcome in outcomes.values()) >= len(outcomes) - len(skipped) - 1


def test_a_wrong_gguf_checksum_is_an_input_error_not_unavailability(tmp_path):
    from harness.recipe.models import ModelInputError

    fake = tmp_path / smollm2_models.GGUF_NAME
    fake.write_bytes(b"GGUF but not SmolLM2")
    with pytest.raises(ModelInputError, match="sha256 .* is not the expected"):
        smollm2_models.verify_gguf(fake)


# ------------------------------------------------------------------ 3. what the libraries read is reported
class _Tokenizer:
    """What a GGUF reader that misreads SmolLM2's tokens hands back (transformers 5.17's reading)."""

    eos_token, bos_token, unk_token, pad_token = "<|im_start|>", "<|im_start|>", "<|endoftext|>", None


def test_corrections_name_what_was_read_and_by_which_library():
    tokenizer = _Tokenizer()
    corrections = apply_special_tokens(tokenizer, smollm2_models.SMOLLM2_SPECIAL_TOKENS)
    assert [(c["token"], c["read"], c["set_to"]) for c in corrections] == [
        ("eos_token", "<|im_start|>", "<|im_end|>"), ("pad_token", None, "<|im_end|>")]
    assert corrections[0]["read_by"]["transformers"] == env.package_versions()["transformers"]
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|im_end|>"


def _misread_and_corrected(manifest: dict) -> None:
    facts = manifest["tokens"].setdefault("facts", {"eos": "<|endoftext|>", "bos": "<s>", "unk": "<unk>",
                                                      "pad_as_shipped": "<|endoftext|>",
                                                      "ids": dict(PHI3_SPECIAL_TOKENS.ids)})
    read_by = {"transformers": "4.56.1", "tokenizers": "0.22.1", "gguf": None}
    manifest["tokens"]["as_read"] = {"eos": "<|end|>", "bos": facts["bos"], "unk": facts["unk"],
                                     "pad": facts["pad_as_shipped"], "ids": dict(facts["ids"]), "read_by": read_by}
    manifest["tokens"]["corrections"] = [{"token": "eos_token", "read": "<|end|>", "set_to": "<|endoftext|>",
                                          "read_by": read_by}]


@pytest.mark.slow
def test_a_misread_the_harness_corrected_fails_its_check_and_shows_in_the_report(tmp_path, shared_models_dir):
    directory = plant_run(tmp_path / "cache", shared_models_dir, edit=_misread_and_corrected)
    report = tmp_path / "report.html"
    done = run_suites(tmp_path / "cache", shared_models_dir, "suites/test_tokens.py", "--yoda-report", str(report),
                      "--yoda-baselines-dir", str(tmp_path / "baselines"))
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "transformers 4.56.1" in output and "eos_token '<|end|>' (expected '<|endoftext|>')" in output
    assert "The harness corrected eos_token to run the recipe" in output
    html = report.read_text(encoding="utf-8")
    assert "the harness corrected them to run the recipe" in html and "&lt;|end|&gt;" in html
    assert files.read_json(directory / artifacts.MANIFEST)["tokens"]["corrections"][0]["read"] == "<|end|>"


# ------------------------------------------------------------------ 4. baselines only from good runs
def _mask_every_eos(batch: dict) -> None:
    eos = 32000
    batch["labels"] = [[-100 if token == eos else label for token, label in zip(ids, labels)]
                       for ids, labels in zip(batch["input_ids"], batch["labels"])]


GOOD_AND_LABELS = ["suites/test_memory.py::test_embeddings_and_head_stay_unquantized",
                   "suites/test_labels.py::test_every_eos_keeps_its_label"]


@pytest.mark.slow
def test_update_baselines_is_refused_after_an_invariant_failed(tmp_path, shared_models_dir):
    plant_run(tmp_path / "cache", shared_models_dir, edit_batch=_mask_every_eos)
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    done = run_suites(tmp_path / "cache", shared_models_dir, *GOOD_AND_LABELS, "--yoda-update-baselines",
                      "--yoda-baselines-dir", str(baselines))
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "--yoda-update-baselines refused: 1 invariant check(s) failed (BROKEN): suites/test_labels.py::" in output
    assert not (baselines / "tiny.json").exists(), "a baseline was written from a broken run"

    forced = run_suites(tmp_path / "cache", shared_models_dir, *GOOD_AND_LABELS, "--yoda-update-baselines",
                        "--yoda-force-baselines", "--yoda-baselines-dir", str(baselines))
    assert "updated " in forced.stdout, forced.stdout[-3000:]
    (entry,) = json.loads((baselines / "tiny.json").read_text())["entries"]
    assert entry["provenance"]["forced"] is True
    assert entry["provenance"]["failed_invariants"] == ["suites/test_labels.py::test_every_eos_keeps_its_label"]
    assert entry["provenance"]["harness"]["source"] == env.harness_source_digest()


@pytest.mark.slow
def test_update_baselines_under_xdist_writes_once_from_the_controller(tmp_path, shared_models_dir):
    plant_run(tmp_path / "cache", shared_models_dir)
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    done = run_suites(tmp_path / "cache", shared_models_dir, "-n", "2", *GOOD_AND_LABELS,
                      "suites/test_trainable.py::test_trainable_count_is_the_lora_sum",
                      "--yoda-update-baselines", "--yoda-baselines-dir", str(baselines))
    output = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.OK, output[-3000:]
    assert output.count("yoda-harness: updated ") == 1, output[-3000:]
    assert len(json.loads((baselines / "tiny.json").read_text())["entries"]) == 1


def test_the_cli_refuses_a_run_that_never_finished(tmp_path, capsys):
    from harness.cli import main

    staging = tmp_path / ".tiny-abc.partial-123"
    staging.mkdir()
    (staging / artifacts.MANIFEST).write_text(json.dumps({"status": "running", "profile": "tiny"}))
    assert main(["baselines", "update", str(staging), "--baselines-dir", str(tmp_path)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    unfinished = tmp_path / "tiny-abc"
    shutil.copytree(staging, unfinished)
    assert main(["baselines", "update", str(unfinished), "--baselines-dir", str(tmp_path)]) == 2
    assert "the run is not complete (status 'running'" in capsys.readouterr().err
    assert not (tmp_path / "tiny.json").exists()


# ------------------------------------------------------------------ 5. a cache that cannot go stale
def test_a_change_to_the_harness_source_is_a_new_cache_key(tmp_path, monkeypatch):
    package = tmp_path / "harness"
    shutil.copytree(Path(env.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = env.harness_source_digest(package)
    (package / "recipe" / "generate.py").write_text((package / "recipe" / "generate.py").read_text() + "\n# changed\n")
    assert env.harness_source_digest(package) != before

    profile = profiles.PROFILES["tiny"]
    options, config = profiles.ModelOptions(models_dir=tmp_path), profile.recipe_config()
    key = stages.run_inputs(profile, options, config).key
    monkeypatch.setattr(env, "harness_source_digest", lambda root=None: "another-source")
    assert stages.run_inputs(profile, options, config).key != key


def test_the_environment_fingerprint_covers_the_template_renderer_and_readers():
    assert {"jinja2", "gguf", "numpy"} <= set(env.package_versions())


def test_data_is_keyed_by_every_column_loaded(tmp_path):
    from harness.recipe.data import load_rows, split_rows

    rows, _ = load_rows("bundled")
    changed = [dict(row) for row in rows]
    changed[0]["translation_extra"] += " Hmm."
    assert split_rows(rows, 0.1).content_digest() != split_rows(changed, 0.1).content_digest()


def test_a_local_phi3_directory_is_keyed_by_its_weights_not_its_name(tmp_path):
    from harness.recipe.models.phi3 import HUB_MODEL_ID, phi3_identity

    local = tmp_path / "phi3"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "model.safetensors").write_bytes(b"weights one")
    first = phi3_identity(str(local), tmp_path / "models")
    assert first.startswith("local:") and HUB_MODEL_ID not in first
    (local / "model.safetensors").write_bytes(b"weights two")
    assert phi3_identity(str(local), tmp_path / "models") != first


@pytest.mark.slow
def test_a_reused_run_is_left_byte_identical(tmp_path, shared_models_dir):
    directory = plant_run(tmp_path / "cache", shared_models_dir)
    before = tree_digest(directory)
    done = run_suites(tmp_path / "cache", shared_models_dir, *GOOD_AND_LABELS, "--yoda-update-baselines",
                      "--yoda-baselines-dir", str(tmp_path / "baselines"), "--yoda-report", str(tmp_path / "r.html"))
    assert "reusing run" in done.stdout, done.stdout[-3000:]
    assert tree_digest(directory) == before


# ------------------------------------------------------------------ a structural entry where the profile cannot train
STRUCTURAL_ONLY = (
    "import pytest\n"
    "@pytest.mark.yoda_structural\n"
    "def test_structural(record): assert record.stage == 'prepared'\n"
)


@pytest.mark.parametrize("profile, records", [("smollm2", True), ("tiny", False)])
def test_a_structural_session_records_the_prepared_stage_only_where_the_profile_cannot_train(
        pytester, monkeypatch, no_gpu, tmp_path, profile, records):
    """smollm2 on a CPU: `-m yoda_structural --yoda-update-baselines` records the prepared stage's
    figures (footprints, parameters, template, tokens), marked as such. tiny trains here: its entry
    is the full run's, and a structural session never replaces it."""
    from tests.planted import FIXTURE

    prepared_dir = tmp_path / "prepared"
    shutil.copytree(FIXTURE, prepared_dir)
    manifest = files.read_json(prepared_dir / artifacts.MANIFEST)
    manifest.update(stage="prepared", profile=profile)
    # What only training measures is not in a prepared stage's record.
    trained_only = {f.name for f in dataclasses.fields(record.TrainedTraining)} - {
        f.name for f in dataclasses.fields(record.PreparedTraining)}
    manifest["training"] = {key: value for key, value in manifest["training"].items() if key not in trained_only}
    for key in ("adapter", "saved", "metrics"):
        manifest.pop(key, None)
    files.write_json(prepared_dir / artifacts.MANIFEST, manifest)
    monkeypatch.setattr(stages, "prepare", lambda *a, **k: (stages.Run.load(prepared_dir), None))
    monkeypatch.setattr(stages, "describe_cached", lambda *a, **k: "planted")
    pytester.makepyfile(STRUCTURAL_ONLY)
    baselines = tmp_path / "baselines"
    result = pytester.runpytest_inprocess("--yoda-profile", profile, "-m", "yoda_structural", "--yoda-update-baselines",
                                          "--yoda-baselines-dir", str(baselines), "--yoda-cache-dir", str(tmp_path / "c"))
    assert result.ret == pytest.ExitCode.OK
    output = result.stdout.str()
    if not records:
        assert "--yoda-update-baselines refused: profile tiny trains here, so its entry is the full run's" in output
        assert not (baselines / "tiny.json").exists()
        return
    entry = json.loads((baselines / "smollm2.json").read_text())["entries"][0]
    assert entry["provenance"]["stage"] == "prepared" and entry["loss_history"] == []
    from harness.checks.baselines import PREPARED_METRICS

    # The prepared stage's figures (this planted manifest predates the token record), nothing trained.
    assert {"footprint_adapted_mb", "footprint_loaded_mb", "template_rendered", "total_parameters",
            "trainable_parameters"} <= set(entry["metrics"]) <= set(PREPARED_METRICS)
    assert entry["inputs"]["global_step"] is None
