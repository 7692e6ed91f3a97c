"""The plugin stays out of the way of test sessions that are not the harness's (issue 16).

Every option is `--yoda-*` and every marker `yoda_*`, the import is light, and nothing resolves a
profile or runs the recipe unless a collected check asks for the harness's fixtures.
"""

import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

COEXISTENCE = Path(__file__).resolve().parents[1] / "requirements" / "coexistence.txt"

UNRELATED = '''
import sys

import pytest


@pytest.mark.gpu
def test_own_gpu_marker_is_not_the_harness_s():
    pass  # the harness skips only its own yoda_gpu checks on a CPU


@pytest.mark.quality
@pytest.mark.slow
def test_own_quality_marker_is_not_the_harness_s():
    pass  # no profile is resolved for this repo's own `quality` checks


def test_the_harness_plugin_is_loaded_but_light(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("harness.checks.plugin")
    assert "torch" not in sys.modules and "transformers" not in sys.modules
'''

CONFTEST = '''
def pytest_configure(config):
    for name in ("gpu", "quality", "slow"):
        config.addinivalue_line("markers", f"{name}: this repo's own marker")
'''


def test_an_unrelated_session_runs_untouched(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_unrelated=UNRELATED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("yoda-harness: *")  # no profile announced
    result.stdout.no_fnmatch_line("*yoda-harness verdict*")


@pytest.fixture(scope="module")
def profiling_site(tmp_path_factory) -> Path:
    """pytest-profiling (and what it needs), pinned, installed into a directory of its own."""
    site = tmp_path_factory.mktemp("profiling-site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                           "--target", str(site), "-r", str(COEXISTENCE)], capture_output=True, text=True)
    if done.returncode != 0:
        unreachable = any(word in done.stderr for word in ("NewConnectionError", "Network is unreachable",
                                                            "Temporary failure in name resolution"))
        if unreachable:
            pytest.skip(f"cannot apply here: no package index is reachable to install {COEXISTENCE.name}")
        pytest.fail(f"pip install -r {COEXISTENCE} failed:\n{done.stderr[-2000:]}")
    return site


def test_pytest_profiling_loads_beside_the_harness(pytester, profiling_site, monkeypatch):
    """Before the options were namespaced, argparse refused pytest-profiling's second `--profile`
    and pytest could not start at all."""
    monkeypatch.setenv("PYTHONPATH", str(profiling_site), prepend=":")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_unrelated=UNRELATED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--profile")
    result.assert_outcomes(passed=3)
    header = next(line for line in result.stdout.lines if line.startswith("plugins:"))
    assert "profiling-1.8.1" in header and "yoda-harness" in header, header
    assert (pytester.path / "prof" / "combined.prof").is_file()  # pytest-profiling did its work
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    assert "--profile " in help_text and "--yoda-profile=NAME_OR_FILE" in help_text
