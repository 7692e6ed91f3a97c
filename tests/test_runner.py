"""The one outer loop: run the suites with an environment's python, read the session's own result."""

import io
import sys
from pathlib import Path

from harness.versions import runner

ROOT = Path(__file__).resolve().parents[1]


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "suites").mkdir(parents=True)
    (project / "conftest.py").write_text("")
    (project / "suites" / "test_plain.py").write_text("import pytest\n\ndef test_ok():\n    pass\n\n"
                                                      "def test_skipped():\n    pytest.skip('not here')\n")
    return project


def test_run_suites_returns_the_sessions_result_and_keeps_the_command_and_output(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    project, echoed = _project(tmp_path), io.StringIO()
    args = runner.suite_args(["suites"], "tiny", tmp_path / "cache", extra=["-q"])
    result = runner.run_suites(sys.executable, args, result_path=tmp_path / "r.json", log_path=tmp_path / "log.txt",
                               cwd=project, echo=echoed)
    assert (result.exit_status, result.counts) == (0, {"passed": 1, "failed": 0, "error": 0, "skipped": 1})
    assert [check.message for check in result.skips()] == ["not here"]
    log = (tmp_path / "log.txt").read_text()
    assert log.startswith(f"$ {' '.join(runner.command(sys.executable, args, tmp_path / 'r.json'))}\n")
    assert "1 passed, 1 skipped" in log and "1 passed, 1 skipped" in echoed.getvalue()


def test_a_session_that_wrote_no_result_reads_as_its_exit_status_and_no_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    project = _project(tmp_path)
    (tmp_path / "r.json").write_text("stale")  # an earlier session's: never read as this one's
    result = runner.run_suites(sys.executable, ["suites", "--yoda-profile", "no-such-profile"],
                               result_path=tmp_path / "r.json", log_path=tmp_path / "log.txt", cwd=project)
    assert (result.exit_status, result.checks, result.headline) == (4, [], None)
    assert "unknown profile 'no-such-profile'" in (tmp_path / "log.txt").read_text()
