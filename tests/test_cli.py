"""The command line as users meet it: help on every flag, and the harness's own input errors as one
line on stderr with exit status 2, never a traceback (issue 16)."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli
from tests import sessions


def _flags(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from ((f"{name} {flag}", help_text) for flag, help_text in _flags(subparser))
        elif not isinstance(action, argparse._HelpAction):
            yield "/".join(action.option_strings) or action.dest, action.help


@pytest.mark.parametrize("flag, help_text", list(_flags(cli.build_parser())), ids=lambda value: str(value)[:40])
def test_every_flag_has_help(flag, help_text):
    assert help_text and help_text.strip(), f"{flag} has no help"


def _harness(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return sessions.run([sys.executable, "-m", "harness", *args], env={**os.environ, **(env or {})}, cwd=cwd,
                        timeout=600)


def assert_one_line_error(done: subprocess.CompletedProcess, *expected: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("yoda-harness: error: ")]
    assert len(errors) == 1, done.stderr
    for text in expected:
        assert text in errors[0], errors[0]


def test_unknown_profile(tmp_path):
    assert_one_line_error(_harness("run", "--profile", "nope", "--cache-dir", str(tmp_path)), "unknown profile 'nope'")


def test_profile_that_cannot_run_here(tmp_path):
    done = _harness("run", "--profile", "smollm2", "--cache-dir", str(tmp_path), "--smollm2-gguf", str(tmp_path / "no.gguf"))
    assert_one_line_error(done, "--profile smollm2: cannot run here")


def test_bad_override_names_the_field(tmp_path):
    done = _harness("run", "--profile", "tiny", "--cache-dir", str(tmp_path), "--override", "training.learning_rate=abc")
    assert_one_line_error(done, "--override", "training.learning_rate", "expected float")


def test_bad_data_row_names_file_and_row(tmp_path, shared_models_dir):
    rows = tmp_path / "ours.jsonl"
    rows.write_text(json.dumps({"sentence": "Fine.", "translation": "Fine, it is.", "translation_extra": "Fine, it is."})
                    + "\n" + json.dumps({"sentence": "No target here."}) + "\n")
    done = _harness("run", "--profile", "tiny", "--cache-dir", str(tmp_path / "cache"), "--override",
                    f"data.source={rows}", env={"YODA_HARNESS_MODELS_DIR": str(shared_models_dir)})
    assert_one_line_error(done, str(rows), "row 2")


def test_missing_run_directory(tmp_path):
    assert_one_line_error(_harness("report", str(tmp_path / "gone")), str(tmp_path / "gone"), "not a finished run directory")


def test_corrupt_run_manifest(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    assert_one_line_error(_harness("report", str(tmp_path), "-o", str(tmp_path / "r.html")), "run.json", "not valid JSON")


def test_corrupt_baseline(tmp_path):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "tiny.json").write_text('{"schema": 2, "entries": [')
    assert_one_line_error(_harness("baselines", "show", "--baselines-dir", str(baselines)), "tiny.json", "not valid JSON")


def test_baselines_dir_defaults_to_the_project_root_as_under_pytest(tmp_path):
    """From a subdirectory the CLI finds the same baselines/ as pytest's rootdir does."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'theirs'\n")
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "tiny.json").write_text('{"schema": 2, "entries": [')
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    done = _harness("baselines", "show", cwd=tmp_path / "sub" / "deeper")
    assert_one_line_error(done, str(tmp_path / "baselines" / "tiny.json"))


def test_a_run_json_that_is_no_run_record(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"status": "complete", "stage": "trained", "key": "tiny-abc"}))
    assert_one_line_error(_harness("report", str(tmp_path), "-o", str(tmp_path / "r.html")), "run.json",
                          "not a run record")
