"""Recipe variants (the recipe as first published, intermediate, today's) and the switches they set."""

import logging
import warnings

import pytest

from harness import files
from harness.recipe import data, libwarnings, variants
from harness.recipe.config import RecipeConfig

pytest_plugins = ["pytester"]

ROW = {"sentence": "The Force is strong.", "translation": "Strong, the Force is.", "translation_extra": "Strong, the Force is. Yes."}


def test_todays_variant_is_the_default_config_exactly():
    # Same fingerprint: a run with --yoda-variant 2025-10 is the run without it (same cache key, same baseline).
    config = RecipeConfig().with_overrides(variants.overrides("2025-10"))
    assert config.fingerprint() == RecipeConfig().fingerprint()


def test_the_2024_variant_carries_none_of_the_fixes():
    config = RecipeConfig().with_overrides(variants.overrides("2024"))
    assert config.data.format == "instruction" and config.tokenizer.pad_token == "as_shipped"
    assert config.training.packing_strategy is None and config.training.bf16 is None
    assert config.training.left_to_library() == ("packing_strategy", "bf16")


def test_the_intermediate_variant_is_conversational_with_pad_equal_to_eos():
    config = RecipeConfig().with_overrides(variants.overrides("intermediate"))
    assert config.data.format == "conversational" and config.tokenizer.pad_token == "as_shipped"


def test_every_variant_names_the_regressions_it_works_around():
    assert variants.get("2024").works_around == ()
    assert set(variants.get("intermediate").works_around) < set(variants.get("2025-10").works_around)


def test_an_unknown_variant_is_an_error_naming_the_choices():
    with pytest.raises(variants.UnknownVariant, match="unknown recipe variant '2023'; choose one of: 2024, intermediate, 2025-10"):
        variants.overrides("2023")
    assert variants.overrides(None) == {}


def test_the_instruction_format_is_prompt_completion_strings():
    assert data.format_rows([ROW], "instruction", data.Columns()) == [
        {"prompt": "The Force is strong.", "completion": "Strong, the Force is. Yes."}]
    assert data.from_conversation({"prompt": "a", "completion": "b"}) == ("a", "b")


def test_the_pad_token_switch_reaches_the_tokenizer():
    from types import SimpleNamespace

    from harness.recipe.qlora_sft import prepare_tokenizer

    shipped = SimpleNamespace(pad_token="<|endoftext|>", unk_token="<unk>")
    assert prepare_tokenizer(shipped, RecipeConfig()).pad_token == "<unk>"
    shipped = SimpleNamespace(pad_token="<|endoftext|>", unk_token="<unk>")
    as_shipped = RecipeConfig().with_overrides({"tokenizer.pad_token": "as_shipped"})
    assert prepare_tokenizer(shipped, as_shipped).pad_token == "<|endoftext|>"
    with pytest.raises(ValueError, match="tokenizer.pad_token 'eos'"):
        prepare_tokenizer(shipped, RecipeConfig().with_overrides({"tokenizer.pad_token": "eos"}))


def test_a_run_recorded_before_the_tokenizer_section_reads_as_the_recipes_fix():
    raw = RecipeConfig().to_dict()
    del raw["tokenizer"]
    assert RecipeConfig.from_dict(raw).tokenizer.pad_token == "unk_token"


def test_the_cli_refuses_an_unknown_variant():
    from harness import cli

    assert cli.main(["run", "--profile", "tiny", "--variant", "nope"]) == 2


# ------------------------------------------------------------------ library warnings
def test_deprecations_from_a_library_are_recorded_with_the_setting_they_name():
    config = RecipeConfig()
    with libwarnings.recording(config) as recorded:
        warnings.warn_explicit("`max_seq_length` is deprecated and will be removed in v0.20.0; use `max_length`",
                               FutureWarning, "/venv/lib/python3.11/site-packages/trl/trainer/sft_config.py", 10)
        warnings.warn_explicit("`max_seq_length` is deprecated and will be removed in v0.20.0; use `max_length`",
                               FutureWarning, "/venv/lib/python3.11/site-packages/trl/trainer/sft_config.py", 10)
        logging.getLogger("transformers.modeling_utils").warning("`torch_dtype` is deprecated! Use `dtype` instead!")
    assert [(e.library.split()[0], e.category, e.count) for e in recorded] == [
        ("transformers", "log:warning", 1), ("trl", "FutureWarning", 2)]
    trl_entry = recorded[1]
    assert trl_entry.settings == ["training.max_length"]  # trl's old name for it
    assert "[recipe setting: training.max_length]" in libwarnings.describe(trl_entry)


def test_other_warnings_are_not_recorded_and_still_reach_pytest():
    with pytest.warns(UserWarning, match="padding_side"):
        with libwarnings.recording() as recorded:
            warnings.warn_explicit("You passed a processing_class with `padding_side` not equal to `right`",
                                   UserWarning, "/venv/lib/python3.11/site-packages/trl/trainer/sft_trainer.py", 300)
            warnings.warn_explicit("deprecated here", DeprecationWarning, "/home/me/project/mine.py", 1)
    assert recorded == []  # a user warning without deprecation wording; a deprecation from no library


def test_a_warning_the_baseline_did_not_see_is_new_whatever_its_line_numbers():
    from dataclasses import replace

    seen = libwarnings.LibraryWarning(library="trl 0.16.0", category="FutureWarning", settings=[], where="trl", count=1,
                                      message="`max_seq_length` will be removed in v0.20.0")
    same = replace(seen, library="trl 0.17.0", message="`max_seq_length` will be removed in v0.21.0")
    other = replace(seen, library="trl 0.17.0", message="`packing_strategy` default will change")
    assert libwarnings.new_warnings([same, other], [seen]) == [other]


def test_the_report_lists_the_adaptations_and_the_library_warnings(tmp_path):
    import shutil
    from pathlib import Path

    import lxml.html

    from harness.checks.report import render_run_report
    from harness.run.stages import Run

    directory = Path(shutil.copytree(Path(__file__).parent / "fixtures" / "run_tiny", tmp_path / "run"))
    manifest = files.read_json(directory / "run.json")
    manifest["compat"] = [{"library": "trl 0.14.0", "setting": "max_length", "action": "passed as max_seq_length",
                           "description": "trl 0.14.0: max_length passed as max_seq_length"}]
    manifest["library_warnings"] = [{"library": "trl 0.16.0", "category": "FutureWarning", "count": 2, "where": "trl",
                                     "message": "`max_seq_length` is deprecated <b>", "settings": ["training.max_length"]}]
    files.write_json(directory / "run.json", manifest)
    page = lxml.html.fromstring(render_run_report(Run.load(directory), tmp_path / "r.html")
                                .read_text(encoding="utf-8"))
    assert page.get_element_by_id("compat").text_content().strip() == "trl 0.14.0: max_length passed as max_seq_length"
    row = [cell.text_content() for cell in page.get_element_by_id("library-warnings").xpath(".//tbody/tr/td")]
    assert row == ["trl 0.16.0", "FutureWarning", "`max_seq_length` is deprecated <b>", "training.max_length", "2"]


def test_a_new_deprecation_against_the_baseline_fails_the_warnings_check_as_a_comparison():
    import importlib.util
    from dataclasses import replace
    from pathlib import Path

    from harness.run.stages import Run

    spec = importlib.util.spec_from_file_location("suite_warnings", Path(__file__).parents[1] / "suites" / "test_warnings.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    old = {"library": "trl 0.16.0", "category": "FutureWarning", "message": "`max_seq_length` is deprecated", "settings": [],
           "where": "trl", "count": 1}
    new = {"library": "trl 0.17.0", "category": "FutureWarning", "message": "`packing` default will change", "settings": [],
           "where": "trl", "count": 1}

    class Entry:
        path, entry = Path("baselines/tiny.json"), {"library_warnings": [old]}  # as the baseline file holds it

        def context(self):
            return "baseline tiny.json"

    request = None  # read only when the entry recorded no warnings (not compared)
    run = Run.load(Path(__file__).parent / "fixtures" / "run_tiny").record
    old, new = libwarnings.LibraryWarning.from_dict(old), libwarnings.LibraryWarning.from_dict(new)
    suite.test_no_new_library_deprecation_warning(replace(run, library_warnings=[old]), Entry(), request)
    with pytest.raises(AssertionError, match="(?s)1 library deprecation warning.*`packing` default will change"):
        suite.test_no_new_library_deprecation_warning(replace(run, library_warnings=[old, new]), Entry(), request)


def test_an_unknown_variant_is_a_pytest_usage_error(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--yoda-variant", "2023")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--yoda-variant: unknown recipe variant '2023'; choose one of: 2024, intermediate, 2025-10*"])


def test_the_variant_option_reaches_the_recipe_config_and_overrides_apply_on_top(pytester):
    pytester.makeconftest("""
        import pytest
        from harness.checks.plugin import session_plan

        @pytest.fixture
        def resolved(pytestconfig):
            plan = session_plan(pytestconfig)
            assert plan.profile.name == "tiny"
            return plan.config
    """)
    pytester.makepyfile("""
        def test_config(resolved):
            assert resolved.data.format == "instruction" and resolved.tokenizer.pad_token == "as_shipped"
            assert resolved.training.packing_strategy == "bfd"   # the --yoda-override, on top of the variant
            assert resolved.training.per_device_train_batch_size == 4   # the profile's own override kept
    """)
    result = pytester.runpytest("--yoda-profile", "tiny", "--yoda-variant", "2024",
                                "--yoda-override", "training.packing_strategy=bfd")
    assert result.ret == 0, result.stdout.str()
