"""Profiles are files: the built-ins load from harness/recipe/profiles/builtin/, a user's file extends one,
and a bad file is an error naming the file and the field."""

import pytest

from harness import env
from harness.recipe import profiles

pytest_plugins = ["pytester"]


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_builtins_are_files_with_their_recipe_settings():
    assert set(profiles.PROFILES) == {"tiny", "smollm2", "phi3", "phi3-shape"}
    assert all(p.path.name == f"{p.name}.toml" for p in profiles.PROFILES.values())
    tiny = profiles.PROFILES["tiny"].recipe_config()
    assert (tiny.training.per_device_train_batch_size, tiny.training.learning_rate, tiny.training.seed) == (4, 3e-3, 0)
    assert profiles.auto_order() == ["phi3", "smollm2", "tiny"]


def test_phi3_shape_inherits_the_published_figures_it_must_reproduce():
    shape, phi3 = profiles.PROFILES["phi3-shape"], profiles.PROFILES["phi3"]
    assert shape.reference == phi3.reference == {"footprint_loaded_mb": 2206.34, "footprint_adapted_mb": 2651.07,
                                                 "trainable_parameters": 12582912, "total_parameters": 3833662464}
    assert shape.model.source == "random-phi3" and shape.auto_rank is None and shape.kind == "structural"
    assert shape.recipe_config().generation.batch_size == 128  # phi3's, inherited


def test_a_user_profile_extends_tiny_with_its_own_data_and_one_override(tmp_path):
    data = write(tmp_path, "mine.jsonl", "")
    path = write(tmp_path, "mine.toml", f'''
name = "my-tiny"
extends = "tiny"
description = "tiny on our data, twice the learning rate"
[recipe]
"data.source" = "{data}"
"training.learning_rate" = 6e-3
''')
    mine = profiles.resolve(str(path), profiles.ModelOptions(models_dir=tmp_path))
    config = mine.recipe_config()
    assert (mine.name, config.data.source, config.training.learning_rate) == ("my-tiny", str(data), 6e-3)
    assert config.training.per_device_train_batch_size == 4 and mine.model.source == "tiny"
    assert mine.auto_rank is None and mine.path == path.resolve()


@pytest.mark.parametrize("text, field", [
    ('name = "x"\ndescription = "d"\ncolour = "red"\n[model]\nsource = "tiny"\nfamily = "phi3"\n', "colour: unknown key"),
    ('name = "x"\ndescription = "d"\n[model]\nsource = "ollama"\nfamily = "phi3"\n', "model.source: 'ollama'"),
    ('name = "x"\ndescription = "d"\n[model]\nsource = "tiny"\nfamily = "llama9"\n', "model.family: 'llama9'"),
    ('name = "x"\ndescription = "d"\n[model]\nsource = "hub"\nfamily = "phi3"\n', "model.id: a hub source needs"),
    ('name = "x"\ndescription = "d"\nkind = "half"\n[model]\nsource = "tiny"\nfamily = "phi3"\n', "kind: 'half'"),
    ('extends = "tiny"\n', "name: a profile that extends another needs a name"),
    ('name = "x"\nextends = "tiny"\n[recipe]\n"training.learnin_rate" = 1\n',
     "recipe: unknown recipe config option 'training.learnin_rate'"),
    ('name = "x"\nextends = "x.toml"\n', "extends: a cycle"),
    ('name = "x"\nextends = "tiny"\n[recipe\n', "not valid TOML"),
    ('name = "x"\nextends = "tiny"\n[thresholds]\nmin_blue_gain = 1\n', "thresholds.min_blue_gain: unknown threshold"),
    ('name = "x"\nextends = "tiny"\n[thresholds]\nmin_bleu_gain = "high"\n', "thresholds.min_bleu_gain: expected a number"),
    ('name = "x"\nextends = "tiny"\n[skips]\nqualiti = "why"\n', "skips.qualiti: unknown check category"),
])
def test_a_bad_profile_file_names_the_file_and_the_field(tmp_path, text, field):
    path = write(tmp_path, "x.toml", text)
    with pytest.raises(profiles.ProfileError) as error:
        profiles.load_profile(str(path))
    assert str(path.resolve()) in str(error.value) and field in str(error.value)


def test_a_missing_profile_file_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_inprocess("--yoda-profile", "nowhere/mine.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--yoda-profile 'nowhere/mine.toml': profile file nowhere/mine.toml: no such file*"])


def test_the_plugin_runs_a_profile_file(pytester, monkeypatch):
    monkeypatch.delenv("YODA_HARNESS_PROFILE", raising=False)
    path = write(pytester.path, "mine.toml", 'name = "my-tiny"\nextends = "tiny"\n[recipe]\n"training.num_train_epochs" = 1\n')
    pytester.makepyfile("def test_uses_run(harness_profile): assert harness_profile.name == 'my-tiny'")
    result = pytester.runpytest_inprocess("--yoda-profile", str(path))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["yoda-harness: profile my-tiny: running the recipe*"])


def test_thresholds_are_the_profile_s_and_extend_key_by_key(tmp_path):
    path = write(tmp_path, "mine.toml", 'name = "mine"\nextends = "tiny"\n[thresholds]\nmin_stop_rate = 0.95\n')
    mine, tiny = profiles.load_profile(str(path)), profiles.PROFILES["tiny"]
    assert mine.thresholds == {**tiny.thresholds, "min_stop_rate": 0.95}
    assert set(tiny.thresholds) == set(profiles.THRESHOLDS)  # the default profile sets every bound the suites ask for


def test_a_relative_data_file_is_relative_to_its_profile_file(tmp_path, monkeypatch):
    (tmp_path / "ours").mkdir()
    path = write(tmp_path / "ours", "mine.toml", 'name = "mine"\nextends = "tiny"\n[recipe]\n"data.source" = "s.jsonl"\n')
    monkeypatch.chdir(tmp_path)
    assert profiles.load_profile(str(path)).recipe_config().data.source == str((tmp_path / "ours" / "s.jsonl").resolve())
    assert profiles.load_profile(str(path)).recipe_config().data.source != "s.jsonl"


def test_a_missing_threshold_fails_naming_the_profile(pytester, tmp_path):
    mine = write(tmp_path, "mine.toml", 'name = "mine"\ndescription = "d"\n[model]\nsource = "tiny"\nfamily = "phi3"\n')
    pytester.makepyfile("""
        def test_uses_a_bound(require_threshold):
            require_threshold("min_bleu_gain")
    """)
    result = pytester.runpytest_inprocess("--yoda-profile", str(mine))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*profile mine (*mine.toml): thresholds.min_bleu_gain is not set: add it to the "
                                 "profile's [[]thresholds[]] table*"])


# ------------------------------------------------------------------ what each stage needs
def test_what_each_stage_needs_comes_from_the_profile_file():
    needs = {name: profile.needs for name, profile in profiles.PROFILES.items()}
    real = {"prepared": "any", "trained": "gpu"}
    assert needs == {"tiny": {"prepared": "any", "trained": "any"}, "smollm2": real, "phi3": real, "phi3-shape": real}
    assert profiles.PROFILES["smollm2"].requires_gpu and not profiles.PROFILES["tiny"].requires_gpu


def test_a_file_sets_a_stage_need_and_extends_merge_it_key_by_key(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "gpu_available", lambda: False)
    path = write(tmp_path, "cpu-smol.toml", 'name = "cpu-smol"\nextends = "smollm2"\ndescription = "d"\n'
                                            '[needs]\ntrained = "any"\n')
    profile = profiles.load_profile(path)
    assert profile.needs == {"prepared": "any", "trained": "any"}
    options = profiles.ModelOptions(models_dir=tmp_path)
    smollm2 = profiles.PROFILES["smollm2"]
    assert "its trained stage needs a CUDA GPU" in profiles.why_not_runnable(smollm2, options)
    assert profiles.why_not_runnable(smollm2, options, stages=("prepared",)) is None or \
        "GGUF" in profiles.why_not_runnable(smollm2, options, stages=("prepared",))  # only the weights may be missing


@pytest.mark.parametrize("value, expected", [("true", "gpu"), ("false", "any")])
def test_the_old_requires_gpu_key_still_works(tmp_path, value, expected):
    path = write(tmp_path, "old.toml", f'name = "old"\nextends = "smollm2"\ndescription = "d"\nrequires_gpu = {value}\n')
    assert profiles.load_profile(path).needs == {"prepared": expected, "trained": expected}


@pytest.mark.parametrize("text, problem", [
    ('requires_gpu = true\n[needs]\ntrained = "gpu"\n', r"requires_gpu: given beside \[needs\], which replaces it"),
    ('requires_gpu = "yes"\n', r"requires_gpu: expected true or false.*\[needs\]"),
    ('[needs]\ntraining = "gpu"\n', r"needs.training: unknown stage \(known: prepared, trained\)"),
    ('[needs]\ntrained = "cuda"\n', r"needs.trained: 'cuda': expected one of 'any', 'gpu'"),
    ('[needs]\nprepared = "gpu"\ntrained = "any"\n', r"needs: the trained stage continues from the prepared one"),
])
def test_a_bad_stage_need_is_an_error_naming_the_key(tmp_path, text, problem):
    path = write(tmp_path, "bad.toml", f'name = "bad"\nextends = "tiny"\ndescription = "d"\n{text}')
    with pytest.raises(profiles.ProfileError, match=problem):
        profiles.load_profile(path)
