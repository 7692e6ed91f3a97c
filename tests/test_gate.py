"""The main job (`yoda-harness gate`): on a CPU with SmolLM2's GGUF, tiny's every check and smollm2's
structural checks, two pytest sessions, one summary naming both verdicts."""

import io
from pathlib import Path

import pytest

from harness import env
from harness.recipe import profiles
from harness.recipe.models import smollm2 as smollm2_models
from harness.versions import gate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cpu(monkeypatch):
    monkeypatch.setattr(env, "gpu_available", lambda: False)
    monkeypatch.setattr(profiles.phi3_models, "phi3_cached", lambda path=None, model_id=None: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def gguf(tmp_path, monkeypatch):
    path = tmp_path / smollm2_models.GGUF_NAME
    path.write_bytes(b"GGUF")  # present is all a plan asks; the checksum is checked when it is read
    monkeypatch.setenv(smollm2_models.GGUF_ENV, str(path))
    return path


def options(tmp_path):
    return profiles.ModelOptions(models_dir=tmp_path / "models")


def test_on_a_cpu_with_the_gguf_the_gate_is_smollm2_structural_then_tiny_whole(cpu, gguf, tmp_path):
    legs = gate.plan(options(tmp_path))
    assert [(leg.profile, leg.structural) for leg in legs] == [("smollm2", True), ("tiny", False)]
    assert "its trained stage needs a CUDA GPU" in legs[0].why
    assert legs[0].pytest_args() == ["suites", "--yoda-profile", "smollm2", "-m", "yoda_structural"]
    assert legs[1].pytest_args() == ["suites", "--yoda-profile", "tiny"]


def test_without_the_gguf_the_gate_is_tiny_alone(cpu, tmp_path, monkeypatch):
    monkeypatch.setenv(smollm2_models.GGUF_ENV, str(tmp_path / "missing.gguf"))
    assert [(leg.profile, leg.structural) for leg in gate.plan(options(tmp_path))] == [("tiny", False)]


def test_on_a_gpu_with_the_gguf_the_gate_is_smollm2_whole(gguf, tmp_path, monkeypatch):
    monkeypatch.setattr(env, "gpu_available", lambda: True)
    monkeypatch.setattr(profiles.phi3_models, "phi3_cached", lambda path=None, model_id=None: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert [(leg.profile, leg.structural) for leg in gate.plan(options(tmp_path))] == [("smollm2", False)]


SMOLLM2_CHECKS = '''
import pytest

@pytest.mark.yoda_structural
def test_reads_the_tokens(harness_profile):
    assert harness_profile.name == "smollm2"

@pytest.mark.yoda_structural
def test_eos_as_read(harness_profile):
    assert False, "eos_token '<|im_start|>' (expected '<|im_end|>')"

def test_needs_training(harness_profile):
    pass
'''
TINY_CHECKS = '''
def test_everything(harness_profile):
    assert harness_profile.name == "tiny"
'''


def test_the_gate_runs_each_leg_and_one_summary_names_both_verdicts(cpu, gguf, tmp_path, monkeypatch):
    """Real pytest sessions, one per leg, over stand-in suites: the smollm2 leg runs only its
    structural checks (one BROKEN, naming the token), the tiny leg every check; the summary has both."""
    project = tmp_path / "project"
    (project / "suites").mkdir(parents=True)
    (project / "suites" / "test_smollm2.py").write_text(SMOLLM2_CHECKS)
    (project / "suites" / "test_tiny.py").write_text(TINY_CHECKS)
    (project / "conftest.py").write_text("")
    legs = [gate.Leg("smollm2", True, "its trained stage needs a CUDA GPU"), gate.Leg("tiny", False, "auto -> tiny")]
    monkeypatch.setattr(gate, "plan", lambda options: legs)
    # Each leg's stand-in suite is its own file.
    monkeypatch.setattr(gate.Leg, "pytest_args", lambda self: [f"suites/test_{self.profile}.py", "--yoda-profile",
                                                              self.profile, *(("-m", "yoda_structural") if self.structural else ())])
    real_run_leg = gate.run_leg
    monkeypatch.setattr(gate, "run_leg", lambda leg, extra, work, out, reports: real_run_leg(leg, extra, work, cwd=project,
                                                                                          out=out, reports=reports))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("YODA_HARNESS_CACHE", str(tmp_path / "cache"))
    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    out = io.StringIO()
    code = gate.main(["--reports", str(tmp_path / "reports"), "-p", "no:cacheprovider", "-q"], options(tmp_path), out=out)
    text = out.getvalue()
    summary = text.split("yoda-harness gate: 2 verdicts")[1].strip().splitlines()[1:]
    assert code == 1
    assert summary[0].startswith("smollm2 (structural checks (prepared stage: nothing trains)): 1 thing broke: "
                                 "test_eos_as_read (eos_token '<|im_start|>' (expected '<|im_end|>'))")
    assert "1 passed, 1 failed" in summary[0] and "(exit 1," in summary[0]
    assert summary[1].startswith("tiny (every check): nothing broke; no comparison with the baseline was made "
                                 "(none was selected) — 1 passed (exit 0,")
    assert summary[2] == "gate: failed (exit 1: smollm2)"
    markdown = step_summary.read_text()
    assert markdown.startswith("### yoda-harness gate: failed") and "**smollm2**" in markdown and "**tiny**" in markdown
    kept = sorted(path.name for path in (tmp_path / "reports").iterdir())
    assert kept == ["gate.md", "junit-smollm2.xml", "junit-tiny.xml", "pytest-smollm2.log", "pytest-tiny.log",
                    "result-smollm2.json", "result-tiny.json", "summary-smollm2.md", "summary-tiny.md"]
    assert "--yoda-report=" in text.split("$ ")[2].splitlines()[0]  # asked of the leg that trains only
    assert "--yoda-report=" not in text.split("$ ")[1].splitlines()[0]


def test_a_leg_without_a_verdict_says_why():
    result = gate.LegResult(gate.Leg("smollm2", False, "x"), 4, 2.0,
                            tail=["ERROR: yoda-harness: --yoda-profile smollm2: cannot run here: its trained stage ..."])
    assert result.line() == ("smollm2 (every check): no verdict: ERROR: yoda-harness: --yoda-profile smollm2: cannot "
                             "run here: its trained stage ... (exit 4, 2 s)")
    assert gate.exit_status([gate.LegResult(gate.Leg("a", True, ""), 0, 1), result]) == 4


def test_the_cli_passes_every_other_argument_to_the_legs(monkeypatch):
    from harness import cli

    seen = {}
    monkeypatch.setattr(gate, "main", lambda extra, options: seen.setdefault("extra", extra) and 0)
    cli.main(["gate", "--yoda-report", "r.html", "-p", "no:cacheprovider"])
    assert seen["extra"] == ["--yoda-report", "r.html", "-p", "no:cacheprovider"]
