"""The pytest plugin as users meet it: options, errors, GPU skips."""

import pytest

pytest_plugins = ["pytester"]


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
        from harness import baselines

        def test_load(pytestconfig):
            from pathlib import Path
            baselines.load(Path(pytestconfig.getoption("--yoda-baselines-dir")) / "tiny.json", "tiny")
        """
    )
    result = pytester.runpytest_inprocess("--yoda-baselines-dir", str(tmp_path))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tiny.json: entries[[]0[]].version_set: expected str*"])
