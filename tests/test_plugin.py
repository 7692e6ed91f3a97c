"""The pytest plugin as users meet it: options, errors, GPU skips."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]


def test_unknown_profile_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--yoda-profile", "phi4")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--yoda-profile 'phi4': unknown profile 'phi4'; choose one of: auto, phi3, phi3-shape, smollm2, tiny, or a path to a profile file (.toml)*"])


def test_bad_override_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--yoda-override", "training.learnin_rate=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown recipe config option 'training.learnin_rate'*"])


def test_gpu_checks_skip_with_the_reason_on_a_cpu(pytester, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.yoda_gpu
        def test_needs_gpu():
            raise AssertionError("must not run on a CPU")
        """
    )
    result = pytester.runpytest_inprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs a CUDA GPU; none is visible on this machine*"])


def test_corrupt_baseline_fails_loudly(pytester, tmp_path):
    (tmp_path / "tiny.json").write_text('{"schema": 1, "profile": "tiny", "entries": [{}]}')
    pytester.makepyfile(
        """
        from harness.checks import baselines

        def test_load(pytestconfig):
            from pathlib import Path
            baselines.load(Path(pytestconfig.getoption("--yoda-baselines-dir")) / "tiny.json", "tiny")
        """
    )
    result = pytester.runpytest_inprocess("--yoda-baselines-dir", str(tmp_path))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tiny.json: entries[[]0[]].version_set: expected str*"])


def _suites_on_a_bad_row(tmp_path, *args: str):
    """The suites, `-m yoda_structural`, with a team profile whose data lacks the target column in row 18."""
    import json
    import os
    import subprocess
    import sys

    example = ROOT / "examples" / "own-recipe"
    rows = [json.loads(line) for line in (example / "sentences.jsonl").read_text().splitlines()]
    del rows[17]["yoda"]
    (tmp_path / "ours.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "ours.toml").write_text((example / "profile.toml").read_text().replace("sentences.jsonl", "ours.jsonl"))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   "YODA_HARNESS_CACHE": str(tmp_path / "cache"), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", *args, "--yoda-profile", "ours.toml",
                           "-m", "yoda_structural", "-p", "no:cacheprovider"],
                          cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("suites", [["--pyargs", "harness.suites"], [str(ROOT / "suites")]], ids=["installed", "path"])
def test_a_bad_data_row_in_a_team_profile_is_one_line_exit_4(tmp_path, suites):
    """The suites (installed, or by path) with a profile whose data lacks the target column in one row:
    a usage error naming the file and the row, found while planning the session, never an INTERNALERROR."""
    done = _suites_on_a_bad_row(tmp_path, *suites)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "INTERNALERROR" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"ERROR: yoda-harness: --yoda-profile ours.toml: {tmp_path / 'ours.jsonl'}: row 18: column 'yoda' is missing or null"
    ]


@pytest.mark.slow
def test_under_xdist_a_bad_data_row_fails_each_check_in_one_line_never_an_internalerror(tmp_path):
    """A worker cannot stop the session with a usage error (xdist's controller would crash): each
    check that needs the run fails at setup with the same one line instead."""
    done = _suites_on_a_bad_row(tmp_path, str(ROOT / "suites"), "-n", "2")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "INTERNALERROR" not in done.stdout + done.stderr
    line = f"yoda-harness: --yoda-profile ours.toml: {tmp_path / 'ours.jsonl'}: row 18: column 'yoda' is missing or null"
    assert done.stdout.count(f"\n{line}\n") >= 2, done.stdout[-3000:]
    assert "passed" not in done.stdout.splitlines()[-1]
