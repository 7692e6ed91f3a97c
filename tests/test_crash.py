"""A crash of the recipe is one verdict: injected into trl's packing (a KeyError under trl's own
ValueError, as an old release did), the session reports one BROKEN naming the phase, the root cause
and the libraries, once; every other check that needed the stage is "not run"."""

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from harness import crash

ROOT = Path(__file__).resolve().parents[1]


def test_root_cause_is_the_innermost_exception_of_the_chain():
    try:
        try:
            {}["text"]
        except KeyError as error:
            raise ValueError("Error occurred while packing the dataset") from error
    except ValueError as outer:
        error = outer
    error.harness_phase = "trainer"
    recorded = crash.RecipeCrash.of(error, "prepared")
    assert recorded.phase == "trainer" and recorded.root == "KeyError: 'text'"
    assert recorded.line.startswith("the recipe failed in phase trainer: KeyError: 'text' (raised as ValueError: "
                                    "Error occurred while packing the dataset) with ")
    assert "trl " in recorded.line and "transformers " in recorded.line


def test_a_crash_in_packing_is_one_broken_line_and_the_rest_not_run(tmp_path, shared_models_dir):
    junit = tmp_path / "junit.xml"
    env = dict(os.environ, YODA_HARNESS_INJECT="packing-crashes", YODA_HARNESS_MODELS_DIR=str(shared_models_dir))
    done = subprocess.run([sys.executable, "-m", "pytest", "suites", "--yoda-profile", "tiny", "-m", "yoda_structural",
                           "--yoda-cache-dir", str(tmp_path / "cache"), "-p", "tests.regressions", "-p",
                           "no:cacheprovider", "-q", f"--junitxml={junit}"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-3000:] + done.stderr[-2000:]
    verdict = done.stdout.split("yoda-harness verdict")[1].splitlines()[1]
    assert verdict.startswith("1 thing broke: the recipe failed in phase trainer: KeyError: 'text' (raised as "
                              "ValueError: Error occurred while packing the dataset (injected)) with trl "), verdict
    assert " checks not run: the recipe failed in phase trainer" in verdict
    assert done.stdout.count("The above exception was the direct cause") == 1  # the chained traceback, once
    cases = list(ElementTree.parse(junit).iter("testcase"))
    failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    not_run = [c for c in cases if c.find("skipped") is not None
               and crash.NOT_RUN_PREFIX in (c.find("skipped").get("message") or "")]
    assert len(failed) == 1 and len(not_run) == len(cases) - 1 >= 20
    properties = {p.get("name"): p.get("value") for p in ElementTree.parse(junit).iter("property")}
    assert properties["yoda_harness_crash"].startswith("the recipe failed in phase trainer: KeyError: 'text'")
    assert properties["yoda_harness_broken"] == "1" and properties["yoda_harness_not_run"] == str(len(not_run))
