"""BROKEN apart from CHANGED, as a user meets it: the suites' baseline comparison run by pytester on
the committed finished run (tests/fixtures/run_tiny), with a defect injected into its manifest."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.checks import baselines
from harness.recipe.record import load

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "run_tiny"

CONFTEST = '''
import json
from pathlib import Path

import pytest

from harness.recipe.profiles import PROFILES
from harness.recipe.record import load
from harness.run.stages import Run

FIXTURE = Path({fixture!r})


def change(manifest):
{change}


def change_template(template):
{template_change}


@pytest.fixture(scope="session")
def harness_profile():
    return PROFILES["tiny"]


@pytest.fixture(scope="session")
def recipe_run(harness_profile):  # as the plugin's own: every check of the recipe needs the profile
    manifest = json.loads((FIXTURE / "run.json").read_text())
    change(manifest)
    return Run(FIXTURE, load(manifest), reused=True)


@pytest.fixture(scope="session")
def prepared_run(recipe_run):  # the stored run holds the prepared stage's records too
    return recipe_run


@pytest.fixture(scope="session")
def run_artifacts(recipe_run):
    def read(name):
        value = recipe_run.artifact(name)
        if name == "template.json":
            value = dict(value)
            change_template(value)
        return value

    return read
'''

INVARIANTS = '''
def test_every_eos_keeps_its_label(record):
    assert record.tokens.eos_id == 32000, "EOS has label -100: the collator masked EOS"


def test_pad_token_is_not_eos(record):
    assert record.tokens.pad_id != record.tokens.eos_id
'''


@pytest.fixture
def suite(pytester, tmp_path):
    """Write the comparison suite, two invariants and a baseline of the unchanged fixture run;
    return a function that injects `change` (Python statements on `manifest`) and runs pytest."""
    manifest = json.loads((FIXTURE / "run.json").read_text())
    template = json.loads((FIXTURE / "template.json").read_text())
    baselines_dir = tmp_path / "baselines"
    baselines_dir.mkdir()
    baselines.update(baselines_dir / "tiny.json", "tiny", load(manifest), template)
    pytester.makepyfile(test_baseline=(ROOT / "suites" / "test_baseline.py").read_text(),
                        test_invariants=INVARIANTS)

    def run(change: str = "pass", *args: str, template_change: str = "pass"):
        def indented(code):
            return "\n".join("    " + line for line in code.splitlines())

        pytester.makeconftest(CONFTEST.format(fixture=str(FIXTURE), change=indented(change),
                                              template_change=indented(template_change)))
        return pytester.runpytest_inprocess("--yoda-baselines-dir", str(baselines_dir), "-rs", *args)

    return run


HALF_BLEU = 'manifest["metrics"]["tuned"]["vs_translation_extra"]["bleu"] /= 2'
EOS_MASKED = 'manifest["tokens"]["eos_id"] = 7'


def test_an_unchanged_run_passes_every_comparison(suite):
    result = suite()
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*yoda-harness verdict*", "nothing broke; nothing changed",
                                 "compared with baseline tiny.json (same library versions, same device; device cpu; no library changed)*"])


def test_a_changed_only_run_is_reported_as_changed(suite):
    result = suite(HALF_BLEU)
    result.assert_outcomes(failed=1, passed=result.parseoutcomes()["passed"], skipped=result.parseoutcomes().get("skipped", 0))
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # CHANGED gates by default
    result.stdout.fnmatch_lines([
        "nothing broke; 1 thing changed: bleu 1.8293 -> 0.91465",
        "CHANGED (a difference from the baseline):",
        "  *test_baseline.py::test_metric_matches_the_baseline[[]bleu[]]: bleu 1.8293 -> 0.91465",
    ])
    assert "BROKEN (an invariant failed)" not in result.stdout.str()


def test_a_broken_run_lists_broken_first(suite):
    result = suite(f"{HALF_BLEU}\n{EOS_MASKED}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "1 thing broke: test_every_eos_keeps_its_label (EOS has label -100: the collator masked EOS*); "
        "1 thing changed: bleu 1.8293 -> 0.91465",
        "BROKEN (an invariant failed):",
        "  *test_invariants.py::test_every_eos_keeps_its_label: EOS has label -100: the collator masked EOS",
        "CHANGED (a difference from the baseline):",
        "  *test_baseline.py::test_metric_matches_the_baseline[[]bleu[]]: *",
    ])


OTHER_CPU = ('manifest["environment"]["device"] = {"kind": "cpu", "name": "Intel(R) Xeon(R) Platinum 8480+", '
             '"machine": "x86_64", "cuda": None, "count": 0, "torch_capability": "AVX512", '
             '"bnb_avx512bf16_path": True, "threads": 16, "pinned": {}}')


def test_no_entry_is_never_nothing_changed(suite, tmp_path):
    empty = tmp_path / "no-baselines"
    empty.mkdir()
    result = suite("pass", "--yoda-baselines-dir", str(empty))
    assert result.ret == pytest.ExitCode.OK  # nothing broke, nothing was found changed: not a failure by default
    result.stdout.fnmatch_lines(["*yoda-harness verdict*",
                                 "nothing broke; * comparisons not made: no baseline entry for cpu in tiny.json - "
                                 "record one with `python -m harness baselines record --profile tiny --seeds 2`*"])
    assert "nothing changed" not in result.stdout.str()


def test_a_session_that_selected_no_comparison_never_says_nothing_changed(suite):
    result = suite("pass", "-k", "not test_baseline")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["nothing broke; no comparison with the baseline was made (none was selected)"])
    assert "nothing changed" not in result.stdout.str()


def test_require_comparisons_fails_a_session_that_compared_nothing(suite, tmp_path):
    empty = tmp_path / "no-baselines"
    empty.mkdir()
    result = suite("pass", "--yoda-baselines-dir", str(empty), "--yoda-require-comparisons")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["nothing broke; * comparisons not made: *",
                                 "--yoda-require-comparisons: * comparisons not made: the session fails"])
    clean = suite("pass", "--yoda-require-comparisons")  # every comparison made: the option changes nothing
    assert clean.ret == pytest.ExitCode.OK


def test_another_cpus_numbers_are_not_compared_without_a_cross_device_band(suite):
    """The entry is the fixture's CPU; this run says it ran on another (unpinned) CPU: the structural
    figures still compare, the numbers say why they were not compared, and the verdict counts them."""
    result = suite(OTHER_CPU, "--yoda-require-comparisons", "-v")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    result.stdout.fnmatch_lines(["*test_metric_matches_the_baseline[[]trainable_parameters[]] PASSED*"])
    assert "nothing broke; " in text and " comparisons not made: they depend on the device and the entry (cpu) " \
                                        "has no cross-device band for them" in text
    assert "recorded on x86_64; this is Intel(R) Xeon(R) Platinum 8480+ (x86_64), torch CPU kernels AVX512" in text


def test_gate_broken_passes_a_changed_only_run_and_says_so(suite):
    result = suite(HALF_BLEU, "--yoda-gate", "broken")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["nothing broke; 1 thing changed: *",
                                 "--yoda-gate broken: 1 CHANGED did not gate; exit status 0"])


def test_gate_broken_still_fails_a_broken_run(suite):
    result = suite(f"{HALF_BLEU}\n{EOS_MASKED}", "--yoda-gate", "broken")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "did not gate" not in result.stdout.str()


def test_a_run_whose_config_differs_is_one_named_refusal(suite):
    result = suite('manifest["config"]["training"]["learning_rate"] = 0.001\n' + HALF_BLEU)
    outcomes = result.parseoutcomes()
    run_scope = [name for name in baselines.POLICY if baselines.scope_of(name) == baselines.RUN]
    assert outcomes["failed"] == 1 and outcomes["skipped"] >= len(run_scope)
    result.stdout.fnmatch_lines([
        "nothing broke; 1 thing changed: refused: config differs: training.learning_rate 0.003 -> 0.001; "
        "* comparisons not made: refused: config differs: training.learning_rate 0.003 -> 0.001",
        "*SKIPPED*refused: config differs: training.learning_rate 0.003 -> 0.001*",
    ])


def test_a_one_epoch_run_still_compares_the_template(suite):
    """Training settings refuse the learned metrics, not the model's own: template drift still shows."""
    system_turn = 'template["rendered"] = "<|system|>\\nYou are a helpful assistant.<|end|>\\n" + template["rendered"]'
    result = suite('manifest["config"]["training"]["num_train_epochs"] = 1', "-v", template_change=system_turn)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    assert "refused: config differs: training.num_train_epochs 3 -> 1" in text
    assert "template_rendered differs from the baseline (exact)" in text and "renders differently" in text
    result.stdout.fnmatch_lines(["*test_metric_matches_the_baseline[[]footprint_adapted_mb[]] PASSED*",
                                 "*test_metric_matches_the_baseline[[]bleu[]] SKIPPED*"])


def test_summary_as_markdown_and_in_the_github_step_summary(suite, tmp_path, monkeypatch):
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = suite(f"{HALF_BLEU}\n{EOS_MASKED}", "--yoda-summary-md", str(tmp_path / "summary.md"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("### yoda-harness: 1 thing broke: ")
    assert text.index("**BROKEN** (1)") < text.index("**CHANGED** (1)")
    assert "test_baseline.py::test_metric_matches_the_baseline[bleu]`: bleu 1.8293 -> 0.91465" in text
    assert step_summary.read_text() == "earlier step\n" + text + "\n"


def test_junit_properties_name_the_kind_and_the_verdict(suite, tmp_path):
    junit = tmp_path / "junit.xml"
    suite(f"{HALF_BLEU}\n{EOS_MASKED}", f"--junitxml={junit}")
    root = ET.parse(junit).getroot()
    suite_properties = {p.get("name"): p.get("value") for p in root.iter("testsuite").__next__().iter("property")
                        if p.get("name", "").startswith("yoda_harness")}
    assert suite_properties["yoda_harness_broken"] == "1" and suite_properties["yoda_harness_changed"] == "1"
    assert suite_properties["yoda_harness_verdict"].startswith("1 thing broke")
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in root.iter("testcase")}
    assert cases["test_every_eos_keeps_its_label"] == {"check_kind": "invariant", "verdict": "BROKEN"}
    assert cases["test_pad_token_is_not_eos"] == {"check_kind": "invariant"}
    assert cases["test_metric_matches_the_baseline[bleu]"]["verdict"] == "CHANGED"
    assert cases["test_metric_matches_the_baseline[bleu]"]["check_kind"] == "comparison"


def test_checks_that_do_not_use_the_recipe_are_not_classified(pytester, tmp_path, monkeypatch):
    step_summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    pytester.makepyfile("def test_plain(): assert False")
    result = pytester.runpytest_inprocess("--yoda-gate", "broken")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "yoda-harness verdict" not in result.stdout.str()
    assert not step_summary.exists()


@pytest.mark.parametrize("args, message", [
    (["--yoda-gate", "changed"], "*--yoda-gate: invalid choice: 'changed'*"),
    (["--yoda-baseline-seeds", "2"], "*--yoda-baseline-seeds is gone: record an entry over seeds, each in a session of "
                                     "its own, with `python -m harness baselines record --profile NAME --seeds N`*"),
])
def test_bad_verdict_options_are_usage_errors(pytester, args, message):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*args)
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED)
    result.stderr.fnmatch_lines([message])


MARKED = '''
import pytest


@pytest.mark.yoda_check(headline="PAD == EOS", settings=("tokenizer.pad_token",))
def test_pad_differs(record):
    assert record.tokens.pad_id != record.tokens.eos_id


@pytest.mark.yoda_check(headline="special tokens misread", detail_after="read them: ")
def test_tokens_read(record):
    assert record.tokens.eos_id == 32000, "the library read them: eos_id 7 (expected 32000). More."
'''


def _result_of(suite, pytester, tmp_path, *args):
    from harness.checks.result import SessionResult

    pytester.makepyfile(test_marked=MARKED)
    path = tmp_path / "result.json"
    outcome = suite(f"{HALF_BLEU}\n{EOS_MASKED}", "--yoda-result-json", str(path), *args)
    return outcome, SessionResult.read(path)


def test_the_result_json_is_the_sessions_own_verdict(suite, pytester, tmp_path):
    from harness.checks.result import SessionResult

    outcome, result = _result_of(suite, pytester, tmp_path)
    printed = outcome.stdout.str().split("yoda-harness verdict", 1)[1].splitlines()[1]
    assert (result.exit_status, result.headline) == (outcome.ret, printed)
    assert result.headline.startswith("2 things broke: test_every_eos_keeps_its_label (EOS has label -100")
    def local(nodeid):  # pytester's root is the test's directory's parent
        return nodeid.split("/", 1)[-1]

    assert [(local(f.nodeid), f.headline) for f in result.broken] == [
        ("test_invariants.py::test_every_eos_keeps_its_label", "test_every_eos_keeps_its_label"),
        ("test_marked.py::test_tokens_read", "special tokens misread")]
    assert [(local(f.nodeid), f.summary) for f in result.changed] == [
        ("test_baseline.py::test_metric_matches_the_baseline[bleu]", "bleu 1.8293 -> 0.91465")]
    checks = {local(check.nodeid): check for check in result.checks}
    misread = checks["test_marked.py::test_tokens_read"]
    assert (misread.kind, misread.verdict, misread.outcome) == ("invariant", "BROKEN", "failed")
    assert misread.says() == "special tokens misread: eos_id 7 (expected 32000)"
    assert misread.says(detail=False) == "special tokens misread"
    assert checks["test_marked.py::test_pad_differs"].settings == ("tokenizer.pad_token",)
    assert checks["test_marked.py::test_pad_differs"].verdict == "passed"
    parsed = outcome.parseoutcomes()
    assert result.counts == {"passed": parsed["passed"], "failed": 3, "error": 0, "skipped": parsed.get("skipped", 0)}
    assert result.suite_outcomes()["test_marked.py"] == "failed" and result.crash is None
    assert SessionResult.from_json(result.to_json()) == result


def test_the_result_json_under_xdist_is_the_controllers(suite, pytester, tmp_path):
    pytest.importorskip("xdist")
    serial = _result_of(suite, pytester, tmp_path)[1]
    outcome, result = _result_of(suite, pytester, tmp_path, "-n", "2")
    assert outcome.ret == pytest.ExitCode.TESTS_FAILED
    # The workers' reports arrive in any order: the same findings, listed in the order they came.
    assert result.headline.startswith("2 things broke: ") and result.counts == serial.counts
    for kind in ("broken", "changed"):
        assert sorted(getattr(result, kind), key=str) == sorted(getattr(serial, kind), key=str)
    assert sorted(result.checks, key=lambda c: c.nodeid) == sorted(serial.checks, key=lambda c: c.nodeid)


def test_a_result_json_of_another_schema_is_refused(tmp_path):
    from harness.checks.result import ResultError, SessionResult

    (tmp_path / "r.json").write_text('{"schema": 99}')
    with pytest.raises(ResultError, match=r"r\.json: not a session result of schema 1 \(schema: 99\)"):
        SessionResult.read(tmp_path / "r.json")


def test_a_suite_that_cannot_be_collected_is_an_error_in_the_result_json(pytester, tmp_path):
    from harness.checks.result import SessionResult

    pytester.makepyfile(test_broken="import no_such_module_here\n", test_fine="def test_ok(): pass\n")
    path = tmp_path / "result.json"
    outcome = pytester.runpytest_inprocess("--yoda-result-json", str(path), "--continue-on-collection-errors")
    result = SessionResult.read(path)
    assert result.exit_status == outcome.ret == pytest.ExitCode.TESTS_FAILED
    assert result.suite_outcomes() == {"test_broken.py": "failed", "test_fine.py": "passed"}
    [broken] = result.failures()
    assert broken.outcome == "error" and "no_such_module_here" in broken.message
    assert result.headline is None  # no check of the recipe ran: no verdict line
