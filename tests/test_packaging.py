"""The wheel holds what an installed harness needs: every module, the suites as `harness.suites`,
the built-in profiles, the bundled data and the report's templates (issue 16: suites any repo can run)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    # Built from a copy: setuptools reuses a build/ directory, whose stale files would hide a missing package.
    source = tmp_path_factory.mktemp("source") / "yoda-harness"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", ".nox", "build", "dist", "reports",
                                                                 "*.egg-info", "__pycache__", ".*cache*", ".gpu*", ".gguf*"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                           "--no-build-isolation", "-w", str(out), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = out.glob("yoda_harness-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def test_every_harness_module_is_in_the_wheel(wheel_files):
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "harness").rglob("*.py")}
    assert modules - wheel_files == set()


def test_the_suites_install_as_harness_suites(wheel_files):
    suites = {f"harness/suites/{path.name}" for path in (ROOT / "suites").glob("*.py")}
    assert "harness/suites/__init__.py" in suites and "harness/suites/test_labels.py" in suites
    assert suites - wheel_files == set()


def test_the_data_files_are_in_the_wheel(wheel_files):
    needed = {"harness/recipe/profiles/builtin/tiny.toml", "harness/recipe/data_files/yoda_sentences.jsonl",
              "harness/checks/report/templates/run.html"}
    needed |= {f"harness/recipe/profiles/builtin/{path.name}" for path in (ROOT / "harness/recipe/profiles/builtin").glob("*.toml")}
    assert needed - wheel_files == set()
