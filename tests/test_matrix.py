"""The version matrix: versions.toml, what a session installs, result JSONs, the table, the CLI."""

import html
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from harness import cli, env
from harness.checks.result import Check, Crash, SessionResult
from harness.versions import matrix
from harness.versions.matrix import VersionSetError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ versions.toml
def test_the_repos_version_sets_parse_with_the_recipes_pins():
    sets = matrix.load_version_sets(ROOT / "versions.toml")
    assert list(sets)[:2] == ["seed-2024", "seed-2025-10"] and {"current", "latest"} <= set(sets)
    assert sets["seed-2024"].pinned() == {
        "huggingface-hub": "0.26.2", "safetensors": "0.4.5", "datasets": "3.1.0", "accelerate": "1.1.1",
        "bitsandbytes": "0.45.2", "transformers": "4.46.2", "peft": "0.13.2", "trl": "0.12.1"}
    assert sets["seed-2025-10"].pinned()["trl"] == "0.23.1"
    assert sets["current"].pinned()["transformers"] == "5.23.0"
    assert set(sets["latest"].pinned().values()) == {None}


def test_the_history_sets_hold_both_sides_of_each_regression_on_cpu_capable_libraries():
    sets = matrix.load_version_sets(ROOT / "versions.toml")
    for last_good, first_bad in [("0.14.0", "0.15.0"), ("0.16.0", "0.16.1"), ("0.18.2", "0.19.0"), ("0.23.0", "0.23.1")]:
        for version in (last_good, first_bad):
            assert any(s.pinned().get("trl") == version for s in sets.values()), f"no history set with trl {version}"
    for name, version_set in sets.items():
        pinned = version_set.pinned()
        if name.startswith("trl-") or name.endswith("-cpu"):
            # bitsandbytes >= 0.50 runs NF4 and paged_adamw_8bit on CPU; transformers >= 4.53 lets it.
            assert pinned["bitsandbytes"] == "0.50.2" and Version(pinned["transformers"]) >= Version("4.53"), name
            # 'trl-X' is a base set with trl X; 'trl-X-on-BASE' the BASE set's libraries with trl X.
            assert name == "seed-2024-cpu" or pinned["trl"] == name.removeprefix("trl-").split("-on-")[0] \
                or name == "seed-2025-10-cpu"


def write(tmp_path, text) -> Path:
    path = tmp_path / "versions.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("[sets.a\npins = []", "not valid TOML"),
    ("title = 'x'", "expected one or more [sets.NAME] tables"),
    ("[sets.a]\npins=['trl']\n[other]\nx=1", "unknown top-level key"),
    ("[sets]\na = 3", "set 'a': expected a table"),
    ("[sets.a]\ndescription = 'x'", "set 'a': `pins` must be a non-empty list"),
    ("[sets.a]\npins = []", "set 'a': `pins` must be a non-empty list"),
    ("[sets.a]\npins = 'trl==1'", "set 'a': `pins` must be a non-empty list"),
    ("[sets.a]\npins = [3]", "set 'a': pins[0]: expected a string"),
    ("[sets.good]\npins=['trl']\n[sets.bad]\npins = ['trl==0.12.1', 'peft=0.13']", "set 'bad': pins[1] 'peft=0.13' is not a pip requirement"),
    ("[sets.a]\npins = ['trl==1', 'TRL==2']", "set 'a': 'TRL' is pinned twice"),
    ("[sets.a]\npins = ['trl']\nextra = 1", "set 'a': unknown key(s) ['extra']"),
    ("[sets.a]\npins = ['trl']\ndescription = 1", "set 'a': `description` must be a string"),
    ("[sets.'a b']\npins = ['trl']", "set 'a b': a set name may hold only"),
    ("[sets.a]\npins = ['trl @ https://example.com/trl.whl']", "URL requirements are not supported"),
])
def test_a_malformed_file_or_set_is_an_error_naming_the_file_and_the_set(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(VersionSetError) as error:
        matrix.load_version_sets(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(VersionSetError, match="no such file"):
        matrix.load_version_sets(tmp_path / "versions.toml")


names = st.from_regex(r"[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,4})?", fullmatch=True)
versions = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)).map(lambda t: ".".join(map(str, t)))


@given(st.dictionaries(names, st.dictionaries(names, st.none() | versions, min_size=1, max_size=6), min_size=1, max_size=5))
def test_any_well_formed_file_round_trips(tmp_path_factory, sets):
    lines = []
    for set_name, pins in sets.items():
        pin_strings = [name if version is None else f"{name}=={version}" for name, version in pins.items()]
        lines += [f"[sets.{set_name}]", f"pins = {json.dumps(pin_strings)}", ""]
    path = tmp_path_factory.mktemp("v") / "versions.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    parsed = matrix.load_version_sets(path)
    assert list(parsed) == list(sets)
    for set_name, pins in sets.items():
        assert parsed[set_name].pinned() == pins


# ------------------------------------------------------------------ what a session installs
def test_install_requirements_put_the_sets_pins_over_the_projects_ranges():
    version_set = matrix.VersionSet("old", ("transformers==4.46.2", "trl==0.12.1"))
    deps = ["torch>=2.4", "transformers>=4.46", "trl>=0.12", "sacrebleu>=2.4", "pytest>=8"]
    assert matrix.install_requirements(version_set, "/wheels/torch.whl", deps) == [
        "/wheels/torch.whl", "transformers==4.46.2", "trl==0.12.1", "sacrebleu>=2.4", "pytest>=8"]


def test_a_set_that_pins_torch_gets_its_own_torch():
    version_set = matrix.VersionSet("t", ("torch==2.4.1", "trl==0.12.1"))
    assert matrix.install_requirements(version_set, "torch", ["torch>=2.4", "pytest>=8"]) == [
        "torch==2.4.1", "trl==0.12.1", "pytest>=8"]


def test_the_projects_dependencies_are_read_from_pyproject():
    deps = matrix.project_dependencies(ROOT / "pyproject.toml")
    assert any(dep.startswith("trl") for dep in deps) and any(dep.startswith("torch") for dep in deps)


# ------------------------------------------------------------------ the session's result -> outcomes -> status
# A session as the plugin writes it (--yoda-result-json): a skip, a failure, passes, an error in setup.
CHECKS = [
    Check("suites/test_bleu.py::test_gain", "skipped", "tiny is a random-weight model: skipped", "invariant", "skipped"),
    Check("suites/test_labels.py::test_eos_kept", "failed", "AssertionError: EOS label masked\nassert -100 == 32000",
          "invariant", "BROKEN"),
    Check("suites/test_labels.py::test_pad_is_not_eos", "passed", "", "invariant", "passed"),
    Check("suites/test_memory.py::TestFootprint::test_loaded[tiny]", "passed", "", "invariant", "passed"),
    Check("suites/test_training.py::test_loss_falls", "error",
          "TypeError: SFTConfig.__init__() got an unexpected keyword argument", "invariant", "BROKEN"),
    Check("suites/test_stopping.py::test_stops", "skipped", "tiny is a random-weight model: skipped", "invariant", "skipped"),
]


def session_of(tmp_path, checks=CHECKS, exit_status=1, **facts) -> SessionResult:
    """The session's result as a reader gets it: written by the model, read back from its JSON."""
    path = tmp_path / "session.json"
    SessionResult(profile="tiny", exit_status=exit_status, checks=list(checks), **facts).write(path)
    return SessionResult.read(path)


def test_session_outcomes_per_suite(tmp_path):
    outcomes = matrix.session_outcomes(session_of(tmp_path))
    assert outcomes["suites"] == {"test_bleu.py": "skipped", "test_labels.py": "failed", "test_memory.py": "passed",
                                  "test_stopping.py": "skipped", "test_training.py": "failed"}
    assert outcomes["suite_counts"]["test_labels.py"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 0}
    assert outcomes["suite_counts"]["test_training.py"]["error"] == 1
    assert outcomes["failures"][0]["nodeid"] == "suites/test_labels.py::test_eos_kept"
    assert outcomes["failures"][0]["message"].startswith("AssertionError: EOS label masked")


def test_a_collection_error_is_attributed_to_its_suite(tmp_path):
    errored = [Check("suites/test_labels.py", "error", "ImportError")]
    assert matrix.session_outcomes(session_of(tmp_path, errored, exit_status=2))["suites"] == {"test_labels.py": "failed"}


def outcomes_from(tmp_path, checks=CHECKS):
    return matrix.session_outcomes(session_of(tmp_path, checks))


def test_classify(tmp_path):
    failing = outcomes_from(tmp_path)
    status, reason = matrix.classify(install_error="ERROR: No matching distribution found for bitsandbytes==0.45.2",
                                     probe=None, exit_code=None, outcomes=None)
    assert (status, reason) == ("cannot-run", "install failed: ERROR: No matching distribution found for bitsandbytes==0.45.2")
    status, reason = matrix.classify(install_error=None, probe={"ok": True}, exit_code=1, outcomes=failing)
    assert status == "failed"
    assert "pytest exit 1 (checks failed; 2 passed, 1 failed, 1 error, 2 skipped)" in reason
    assert "suites/test_labels.py::test_eos_kept: AssertionError: EOS label masked" in reason
    status, reason = matrix.classify(install_error=None, probe={"ok": False, "device": "cpu",
                                                                "error": "ImportError: 4-bit needs CUDA"},
                                     exit_code=1, outcomes=failing)
    assert status == "cannot-run" and reason.startswith("device probe failed on cpu: ImportError: 4-bit needs CUDA")
    skipped = outcomes_from(tmp_path, [Check("suites/test_bleu.py::t", "skipped", "needs a CUDA GPU")])
    assert matrix.classify(install_error=None, probe={"ok": True}, exit_code=0, outcomes=skipped) == (
        "cannot-run", "every check was skipped: needs a CUDA GPU")
    passing = outcomes_from(tmp_path, [Check("suites/test_bleu.py::t", "passed")])
    assert matrix.classify(install_error=None, probe={"ok": True}, exit_code=0, outcomes=passing) == ("passed", "pytest: 1 passed")
    assert matrix.classify(install_error=None, probe={"ok": True}, exit_code=4, outcomes=None)[1].startswith(
        "pytest exit 4 (usage error")


def fake_manifest():
    from tests.test_baselines import ENV_A, manifest

    return manifest(ENV_A, bleu=12.5) | {"status": "complete"}


def test_build_result_reads_the_runs_metrics(tmp_path):
    run_dir = tmp_path / "cache" / "runs" / "tiny-abc"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(fake_manifest()))
    (run_dir / "template.json").write_text(json.dumps({"rendered": "<|user|>\nhi<|end|>\n"}))
    result = matrix.build_result(version_set=matrix.VersionSet("current", ("trl==1.16.0",)), profile="tiny",
                                 installed={"trl": "1.16.0", "Transformers": "5.23.0", "numpy": "2.4.6"},
                                 probe={"ok": True, "traceback": "long"}, session=session_of(tmp_path),
                                 cache_dir=tmp_path / "cache", duration_s=12.34)
    assert result["status"] == "failed"
    assert result["packages"]["trl"] == "1.16.0" and result["packages"]["transformers"] == "5.23.0"
    assert result["packages"]["peft"] is None and result["installed"]["numpy"] == "2.4.6"
    assert result["metrics"]["bleu"] == 12.5 and result["metrics"]["global_step"] == 40
    assert result["metrics"]["template_rendered"].startswith("<|user|>")
    assert result["probe"] == {"ok": True} and result["run_dir"] == str(run_dir)
    assert result["suites"]["test_memory.py"] == "passed"
    # The device the run was made on, as the verdict and the report header name it, in every table.
    device = env.describe_device(fake_manifest()["environment"]["device"])
    assert result["device"] == device
    assert f"\nRan on: {device}\n" in matrix.markdown(matrix.report_rows([result]))
    assert f"\nRan on: {device}\n" in matrix.history_markdown(matrix.history_rows([result]))
    page = matrix.render_html(matrix.report_rows([result]), tmp_path / "matrix.html").read_text()
    assert f'<p id="ran-on">Ran on: {html.escape(device)}</p>' in page


def test_sets_run_on_two_devices_are_named_with_their_devices():
    from harness.checks.report.version_matrix import ran_on

    rows = [{"version_set": "a", "device": "NVIDIA H100 80GB HBM3 (sm_90)"},
            {"version_set": "b", "device": "NVIDIA H200 (sm_90)"}, {"version_set": "c", "device": None}]
    assert ran_on(rows) == "NVIDIA H100 80GB HBM3 (sm_90) (a); NVIDIA H200 (sm_90) (b)"
    assert ran_on(rows[2:]) is None


def test_an_incomplete_run_is_not_read(tmp_path):
    run_dir = tmp_path / "runs" / "tiny-abc"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "partial"}))
    assert matrix.latest_run(tmp_path) is None


# ------------------------------------------------------------------ the table
def fake_results(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    common = {"schema": 1, "profile": "tiny"}
    results = [
        common | {"version_set": "current", "status": "passed", "reason": "pytest: 30 passed, 10 skipped",
                  "packages": {"transformers": "5.23.0", "trl": "1.16.0", "peft": "0.21.2"},
                  "suites": {"test_bleu.py": "skipped", "test_labels.py": "passed"},
                  "metrics": {"global_step": 93, "loss_first": 9.41, "train_loss": 6.123456}},
        common | {"version_set": "seed-2025-10", "status": "failed",
                  "reason": "pytest exit 1 (checks failed; 1 failed): suites.test_labels.test_eos_kept: EOS masked",
                  "packages": {"transformers": "4.56.1", "trl": "0.23.1"},
                  "suites": {"test_bleu.py": "skipped", "test_labels.py": "failed"}, "metrics": {"global_step": 88}},
        common | {"version_set": "seed-2024", "status": "cannot-run",
                  "reason": "device probe failed on cpu: 4-bit NF4 load: RuntimeError: CUDA is required",
                  "packages": {"transformers": "4.46.2", "trl": "0.12.1"}, "suites": {}, "metrics": {},
                       "device": None}  # no run: no device to name,
    ]
    for result in results:
        (directory / f"{result['version_set']}.json").write_text(json.dumps(result))
    (directory / "unrelated.json").write_text(json.dumps({"something": "else"}))
    return directory


def test_markdown_table_of_fake_results_shows_a_cannot_run_set_and_its_reason(tmp_path):
    results = matrix.load_results(fake_results(tmp_path / "results"))
    rows = matrix.report_rows(results, order=["seed-2024", "seed-2025-10", "current", "latest"])
    assert [row["version_set"] for row in rows] == ["seed-2024", "seed-2025-10", "current"]
    assert rows[0] == {"version_set": "seed-2024", "status": "cannot-run",
                       "reason": "device probe failed on cpu: 4-bit NF4 load: RuntimeError: CUDA is required",
                       "packages": {"transformers": "4.46.2", "trl": "0.12.1"}, "suites": {}, "metrics": {},
                       "device": None}  # no run: no device to name
    table = matrix.markdown(rows)
    lines = table.splitlines()
    assert "| version set | status | transformers | peft | trl | bitsandbytes | datasets | accelerate | test_bleu.py | test_labels.py |" in lines
    assert "| seed-2024 | *cannot-run* | 4.46.2 | — | 0.12.1 | — | — | — | — | — |" in lines
    assert "| seed-2025-10 | **FAILED** | 4.56.1 | — | 0.23.1 | — | — | — | skipped | **FAILED** |" in lines
    assert "| current | passed | 5.23.0 | 0.21.2 | 1.16.0 | — | — | — | skipped | passed |" in lines
    assert "| version set | global_step | loss_first | train_loss |" in lines
    assert "| current | 93 | 9.41 | 6.123 |" in lines
    assert "- **seed-2024** (cannot-run): device probe failed on cpu: 4-bit NF4 load: RuntimeError: CUDA is required" in lines
    assert matrix.exit_status(rows) == 1
    assert matrix.exit_status([r for r in rows if r["status"] != "failed"], allow_cannot_run=True) == 0


def test_a_result_with_a_bad_status_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"schema": 1, "version_set": "x", "status": "ok", "reason": ""}))
    with pytest.raises(matrix.ResultError, match=r"x\.json: status: 'ok' is not one of"):
        matrix.load_results(tmp_path)


def test_html_goes_through_the_report_modules_renderer(tmp_path, monkeypatch):
    seen = {}
    fake = types.ModuleType("harness.checks.report")
    fake.render_matrix_report = lambda rows, path: seen.update(rows=rows, path=path) or path
    monkeypatch.setitem(sys.modules, "harness.checks.report", fake)
    rows = matrix.report_rows(matrix.load_results(fake_results(tmp_path / "r")))
    assert matrix.render_html(rows, tmp_path / "m.html") == tmp_path / "m.html"
    assert seen["rows"] == rows and {"version_set", "status", "reason", "packages", "suites", "metrics", "device"} == set(rows[0])


def test_cli_matrix_prints_the_table_and_exits_1_on_a_failed_set(tmp_path, monkeypatch, capsys):
    fake = types.ModuleType("harness.checks.report")
    fake.render_matrix_report = lambda rows, path: path.write_text(f"{len(rows)} rows") or path
    monkeypatch.setitem(sys.modules, "harness.checks.report", fake)
    results = fake_results(tmp_path / "results")
    code = cli.main(["matrix", str(results), "--html", str(tmp_path / "m.html"), "--versions", str(ROOT / "versions.toml")])
    out = capsys.readouterr()
    assert code == 1
    assert out.out.startswith("## Version matrix (profile tiny)")
    assert "- **seed-2024** (cannot-run): device probe failed" in out.out
    assert (tmp_path / "m.html").read_text() == "3 rows"
    (results / "seed-2025-10.json").unlink()
    assert cli.main(["matrix", str(results), "--allow-cannot-run"]) == 0
    assert cli.main(["matrix", str(results)]) == 1


def test_cli_matrix_on_an_empty_directory_says_so(tmp_path, capsys):
    assert cli.main(["matrix", str(tmp_path)]) == 2
    assert "no matrix result JSON found" in capsys.readouterr().err


def test_the_device_probe_passes_with_this_environments_libraries(tmp_path):
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "probe.json"
    subprocess.run([sys.executable, "-c", matrix.PROBE_SCRIPT, str(out)], check=True, timeout=300)
    probe = json.loads(out.read_text())
    assert probe["ok"], probe.get("traceback")
    assert probe["layers"] == ["Linear4bit"]


def test_nox_lists_one_session_per_version_set():
    listing = subprocess.run([sys.executable, "-m", "nox", "-l", "--json"], cwd=ROOT, capture_output=True, text=True)
    if listing.returncode != 0 and "No module named nox" in listing.stderr:
        pytest.skip("nox is not installed")
    sessions = {s["session"] for s in json.loads(listing.stdout)}
    expected = {f"suites(set='{name}')" for name in matrix.load_version_sets(ROOT / "versions.toml")}
    assert expected <= sessions and "matrix_table" in sessions


# ------------------------------------------------------------------ the history table
def _marked_facts() -> dict[str, dict]:
    """Each suite check's yoda_check marker (headline, settings, detail marker), by function name."""
    from tests.test_headlines import HEADLINED, check_marks

    return {name: kwargs for module_name in HEADLINED for name, kwargs in check_marks(module_name).items()}


FACTS = _marked_facts()


def _history_result(set_name, trl, variant, verdicts, warnings=()):
    """A history result whose checks carry their suite markers' headlines and settings, as the plugin writes them."""
    checks = {f"suites/test_x.py::{name}": {"kind": "invariant", "outcome": "failed" if v == "BROKEN" else v,
                                            "verdict": v, "message": "", "headline": FACTS.get(name, {}).get("headline", ""),
                                            "settings": list(FACTS.get(name, {}).get("settings", ()))}
              for name, v in verdicts.items()}
    return {"schema": 1, "version_set": set_name, "variant": variant, "status": "failed" if "BROKEN" in verdicts.values() else "passed",
            "reason": "r", "packages": {"trl": trl, "transformers": "4.53.3"}, "checks": checks,
            "library_warnings": list(warnings), "duration_s": 120.0}


def test_the_history_reads_as_the_history_broken_at_the_release_and_fixed_after():
    eos, markers = "test_every_eos_keeps_its_label", "test_training_text_carries_the_role_markers_in_order"
    results = [
        _history_result("trl-0.16.1", "0.16.1", "intermediate", {eos: "passed", markers: "passed"}),
        _history_result("trl-0.14.0", "0.14.0", "intermediate", {eos: "passed", markers: "passed"}),
        _history_result("trl-0.15.0", "0.15.0", "intermediate", {eos: "BROKEN", markers: "passed"}),
        _history_result("trl-0.15.0", "0.15.0", "2024", {eos: "BROKEN", markers: "BROKEN"}),
    ]
    rows = matrix.history_rows(results, ["trl-0.14.0", "trl-0.15.0", "trl-0.16.1"], ["2024", "intermediate"])
    assert [(r["version_set"], r["variant"]) for r in rows] == [
        ("trl-0.15.0", "2024"), ("trl-0.14.0", "intermediate"), ("trl-0.15.0", "intermediate"), ("trl-0.16.1", "intermediate")]
    table = matrix.history_markdown(rows)
    assert "BROKEN: EOS never labelled; training text has no role markers" in table
    assert "| trl-0.16.1 | 0.16.1 | 4.53.3 | intermediate | 2 | 0 | 0 | 0 | fixed: EOS never labelled |" in table


def test_the_sets_checks_carry_the_sessions_own_verdicts(tmp_path):
    session = session_of(tmp_path, [
        Check("suites/test_chat_template.py::test_x_matches_the_baseline", "failed", "differs", "comparison", "CHANGED"),
        Check("suites/test_labels.py::test_every_eos_keeps_its_label", "failed", "masked", "invariant", "BROKEN",
              headline="EOS never labelled")])
    checks = matrix.session_outcomes(session)["checks"]
    assert checks["suites/test_chat_template.py::test_x_matches_the_baseline"]["verdict"] == "CHANGED"
    assert checks["suites/test_labels.py::test_every_eos_keeps_its_label"]["verdict"] == "BROKEN"
    assert checks["suites/test_labels.py::test_every_eos_keeps_its_label"]["headline"] == "EOS never labelled"


def test_a_warning_that_named_the_broken_setting_is_shown_as_preceding_the_break():
    warned = {"library": "trl 0.18.2", "category": "FutureWarning", "message": "packing_strategy default will change",
              "settings": ["training.packing_strategy"], "where": "trl", "count": 1}
    packed = "test_packed_rows_are_exactly_max_length"
    results = [_history_result("trl-0.18.2", "0.18.2", "intermediate", {packed: "passed"}, [warned]),
               _history_result("trl-0.19.0", "0.19.0", "intermediate", {packed: "BROKEN"})]
    rows = matrix.history_rows(results, ["trl-0.18.2", "trl-0.19.0"])
    assert matrix.warnings_before_breaks(rows) == [
        'intermediate: trl 0.18.2 (trl-0.18.2) warned "packing_strategy default will change" before trl-0.19.0 broke: '
        "packing no longer wrapped"]


def test_swapping_refuses_a_set_that_differs_in_more_than_small_packages(monkeypatch):
    from harness.versions import history

    monkeypatch.setattr(history, "installed_versions", lambda python: {"trl": "0.14.0", "datasets": "3.1.0"})
    version_set = matrix.VersionSet("s", ("datasets==4.0.0", "trl==0.15.0"))
    with pytest.raises(history.SwapError, match=r"differs in datasets 3.1.0 \(set: 4.0.0\)"):
        history.swap_into("python", version_set)
    assert history.swap_into("python", matrix.VersionSet("same", ("datasets==3.1.0", "trl==0.14.0"))) == []


def test_nox_lists_one_history_session_per_set_and_variant():
    listing = subprocess.run([sys.executable, "-m", "nox", "-l", "--json"], cwd=ROOT, capture_output=True, text=True)
    if listing.returncode != 0 and "No module named nox" in listing.stderr:
        pytest.skip("nox is not installed")
    sessions = {s["session"] for s in json.loads(listing.stdout)}
    assert "history(set='trl-0.15.0', variant='2024')" in sessions
    assert "history(set='seed-2025-10', variant='2025-10')" in sessions


def test_a_set_that_cannot_run_shows_no_verdict_counts_but_its_reason():
    result = _history_result("seed-2024", "0.12.1", "2024", {"test_every_eos_keeps_its_label": "BROKEN"})
    result.update(status="cannot-run", reason="device probe failed on cpu: CUDA is required")
    table = matrix.history_markdown(matrix.history_rows([result]))
    assert "| seed-2024 | 0.12.1 | 4.53.3 | 2024 | — | — | — | — | cannot run: device probe failed on cpu: CUDA is required |" in table


# ------------------------------------------------------------------ a crash of the recipe: one line
# As the plugin saw it for trl 0.14.0 under datasets 4.0.0 (versions.toml: trl-0.14.0-on-2025-10,
# variant 2025-10), shortened: the session's crash, the check that met it (a comparison, errored in
# setup, BROKEN, its message the line without the traceback), the checks it kept from running.
CRASH_LINE = ("the recipe failed in phase trainer: KeyError: 'text' (raised as ValueError: Error occurred while packing "
              "the dataset. Make sure that your dataset has enough samples to at least yield one packed se...) with "
              "trl 0.14.0, transformers 4.56.1, peft 0.17.0, datasets 4.0.0, bitsandbytes 0.50.2, accelerate 1.10.0, "
              "torch 2.13.0+cpu")
NOT_RUN_CAUSE = "the recipe failed in phase trainer"
CRASH_CHECKS = [
    Check("suites/test_baseline.py::test_metric_matches_the_baseline[footprint_loaded_mb]", "error", CRASH_LINE,
          "comparison", "BROKEN", crash=CRASH_LINE),
    Check("suites/test_labels.py::test_every_eos_keeps_its_label", "skipped",
          "not run: the recipe failed in phase trainer (KeyError: 'text'); reported by "
          "suites/test_baseline.py::test_metric_matches_the_baseline[footprint_loaded_mb]", "invariant", "not run",
          not_run=NOT_RUN_CAUSE),
    Check("suites/test_memory.py::test_footprint_matches_the_prediction", "skipped",
          "not run: the recipe failed in phase trainer (KeyError: 'text')", "invariant", "not run", not_run=NOT_RUN_CAUSE),
]


def crash_session(tmp_path) -> SessionResult:
    return session_of(tmp_path, CRASH_CHECKS, crash=Crash(CRASH_LINE, "trainer", "KeyError: 'text'"), not_run=2,
                      headline=f"1 thing broke: {CRASH_LINE}; 2 checks not run: {NOT_RUN_CAUSE}")


def test_a_crash_of_the_recipe_is_one_broken_line_in_the_matrix_reason(tmp_path):
    session = crash_session(tmp_path)
    outcomes = matrix.session_outcomes(session)
    assert outcomes["crash"] == CRASH_LINE and outcomes["not_run"] == 2
    met = outcomes["checks"]["suites/test_baseline.py::test_metric_matches_the_baseline[footprint_loaded_mb]"]
    # A comparison that met the crash is BROKEN (it could not compare), its message the line, no traceback.
    assert (met["verdict"], met["message"], met["crash"]) == ("BROKEN", CRASH_LINE, CRASH_LINE)
    assert outcomes["failures"][0]["message"] == CRASH_LINE
    assert {n: c["verdict"] for n, c in outcomes["checks"].items() if "baseline" not in n} == {
        "suites/test_labels.py::test_every_eos_keeps_its_label": "not run",
        "suites/test_memory.py::test_footprint_matches_the_prediction": "not run"}
    assert matrix.classify(install_error=None, probe={"ok": True}, exit_code=1, outcomes=outcomes) == ("failed", CRASH_LINE)

    result = matrix.build_result(version_set=matrix.VersionSet("trl-0.14.0-on-2025-10", ("trl==0.14.0",)), profile="tiny",
                                 installed={"trl": "0.14.0", "transformers": "4.56.1"}, probe={"ok": True},
                                 session=session, duration_s=19.0, extra={"variant": "2025-10"})
    assert result["status"] == "failed" and result["reason"] == CRASH_LINE and result["crash"] == CRASH_LINE
    # `harness matrix` on history results: one BROKEN cell, the line once, the other checks not run.
    rows = matrix.history_rows([result], ["trl-0.14.0-on-2025-10"], ["2025-10"])
    assert rows[0]["broken"] == [CRASH_LINE]
    table = matrix.history_markdown(rows)
    row = next(line for line in table.splitlines() if line.startswith("| trl-0.14.0-on-2025-10 |"))
    assert f"| 2025-10 | 0 | 1 | 0 | 0 | BROKEN: {CRASH_LINE}; 2 checks not run |" in row
    assert row.count("KeyError: 'text'") == 1 and "Traceback" not in row
    # The plain matrix (no variant): the reason is the line.
    plain = matrix.markdown(matrix.report_rows([result]))
    assert f"- **trl-0.14.0-on-2025-10** (failed): {CRASH_LINE}" in plain.splitlines()
    assert plain.count("KeyError: 'text'") == 1


def test_a_next_set_that_does_not_crash_reads_fixed():
    crashed = _history_result("trl-0.14.0-on-2025-10", "0.14.0", "2025-10", {"test_metric_matches_the_baseline": "BROKEN"})
    crashed["checks"]["suites/test_x.py::test_metric_matches_the_baseline"]["crash"] = CRASH_LINE
    later = _history_result("seed-2025-10-cpu", "0.23.1", "2025-10", {"test_metric_matches_the_baseline": "passed"})
    rows = matrix.history_rows([crashed, later], ["trl-0.14.0-on-2025-10", "seed-2025-10-cpu"])
    assert rows[0]["broken"] == [CRASH_LINE] and rows[1]["fixed"] == [CRASH_LINE]


def test_a_crash_fixes_nothing_it_kept_from_running():
    changed = _history_result("trl-0.14.0", "0.14.0", "2025-10", {"test_metric_matches_the_baseline": "CHANGED"})
    crashed = _history_result("trl-0.14.0-on-2025-10", "0.14.0", "2025-10",
                              {"test_metric_matches_the_baseline": "not run", "test_every_eos_keeps_its_label": "BROKEN"})
    crashed["checks"]["suites/test_x.py::test_every_eos_keeps_its_label"]["crash"] = CRASH_LINE
    rows = matrix.history_rows([changed, crashed], ["trl-0.14.0", "trl-0.14.0-on-2025-10"])
    assert rows[1]["broken"] == [CRASH_LINE] and rows[1]["fixed"] == []
    assert "fixed" not in matrix.history_markdown(rows).splitlines()[-1]


# ------------------------------------------------------------------ the real model's files, on a CPU
def test_the_gguf_reading_pair_runs_on_smollm2s_structural_checks():
    sets = matrix.load_version_sets(ROOT / "versions.toml")
    for name, transformers in (("transformers-5.17.0", "5.17.0"), ("transformers-5.18.0", "5.18.0"),
                               ("transformers-5.16.0", "5.16.0")):
        assert (sets[name].profile, sets[name].checks) == ("smollm2", "structural")
        pinned = sets[name].pinned()
        # One base environment holds all three: they differ only in transformers (swapped in place).
        assert pinned.pop("transformers") == transformers and pinned["huggingface-hub"] == "1.33.0"
        assert {k: v for k, v in sets[name].pinned().items() if k != "transformers"} == \
            {k: v for k, v in sets["transformers-5.18.0"].pinned().items() if k != "transformers"}
    assert sets["current"].profile is None and sets["current"].checks == "all"


@pytest.mark.parametrize("text, message", [
    ("[sets.a]\npins = ['trl']\nprofile = 3", "set 'a': `profile` must name a profile"),
    ("[sets.a]\npins = ['trl']\nchecks = 'some'", "set 'a': `checks` 'some': expected one of all, structural"),
])
def test_a_bad_profile_or_checks_key_is_an_error_naming_the_set(tmp_path, text, message):
    with pytest.raises(VersionSetError, match=re.escape(message)):
        matrix.load_version_sets(write(tmp_path, text))


def test_the_history_names_the_misread_token():
    from harness.checks import verdicts

    tokens = "test_the_library_read_the_model_family_special_tokens"
    message = ("AssertionError: gguf 0.19.0, tokenizers 0.23.3, transformers 5.17.0 read the model's special tokens "
               "differently from the family's facts: eos_token '<|im_start|>' (expected '<|im_end|>'); pad_token None "
               "(expected '<|im_end|>'). The harness corrected eos_token, pad_token to run the recipe")
    bad = _history_result("transformers-5.17.0", "1.16.0", "2025-10", {tokens: "BROKEN"})
    bad["checks"][f"suites/test_x.py::{tokens}"]["message"] = message
    # The plugin writes what the message names after the marker's `detail_after` as the check's detail.
    bad["checks"][f"suites/test_x.py::{tokens}"]["detail"] = verdicts._detail(message, FACTS[tokens]["detail_after"])
    good = _history_result("transformers-5.18.0", "1.16.0", "2025-10", {tokens: "passed"})
    table = matrix.history_markdown(matrix.history_rows([bad, good], ["transformers-5.17.0", "transformers-5.18.0"]))
    assert ("BROKEN: special tokens misread: eos_token '<\\|im_start\\|>' (expected '<\\|im_end\\|>'); pad_token None "
            "(expected '<\\|im_end\\|>')") in table
    assert "| 2025-10 | 1 | 0 | 0 | 0 | fixed: special tokens misread |" in table


def test_a_trial_runs_the_sets_profile_unless_one_is_named(monkeypatch):
    from harness.versions import history

    monkeypatch.delenv("YODA_HARNESS_PROFILE", raising=False)
    smol, plain = matrix.VersionSet("s", ("trl",), profile="smollm2"), matrix.VersionSet("p", ("trl",))
    assert (history.trial_profile(None, smol), history.trial_profile(None, plain)) == ("smollm2", "tiny")
    assert history.trial_profile("mine.toml", smol) == "mine.toml"


def test_a_swapped_release_whose_requirements_the_environment_lacks_cannot_run(monkeypatch):
    """transformers 5.15 wants tokenizers <= 0.23.0: swapped into an environment with 0.23.3 it would
    fail to import, which must read as `cannot-run`, never as a verdict on the release."""
    from harness.versions import history

    monkeypatch.setattr(history, "installed_versions", lambda python: {"transformers": "5.18.0", "trl": "1.16.0"})
    monkeypatch.setattr(history.subprocess, "run", lambda *a, **k: types.SimpleNamespace(returncode=0, stderr=""))
    monkeypatch.setattr(history, "unmet_requirements",
                        lambda python, name: ["tokenizers<=0.23.0,>=0.22.0 (installed: 0.23.3)"])
    with pytest.raises(history.SwapError, match=re.escape("transformers 5.15.0 requires tokenizers<=0.23.0,>=0.22.0 "
                                                          "(installed: 0.23.3)")):
        history.swap_into("python", matrix.VersionSet("t", ("transformers==5.15.0", "trl==1.16.0")), log=lambda line: None)


def test_unmet_requirements_reads_the_environments_own_metadata():
    from harness.versions import history

    assert history.unmet_requirements(sys.executable, "transformers") == []
