"""Bisect over version sets with a fake runner and a fake release list (no installs, CPU, fast)."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.version import Version

from harness import cli
from harness.versions import bisect as bisect_module
from harness.versions.bisect import CannotRun, bisect, pins_of, releases_between

ROOT = Path(__file__).resolve().parents[1]

GOOD = pins_of(["huggingface-hub==0.26.2", "transformers==4.46.2", "peft==0.13.2", "trl==0.12.1", "datasets==3.1.0"])
BAD = pins_of(["huggingface-hub==0.34.4", "transformers==4.56.1", "peft==0.17.0", "trl==0.23.1", "datasets==4.0.0"])
RELEASES = {
    "trl": ["0.12.0", "0.12.1", "0.12.2", "0.13.0", "0.14.0", "0.15.0", "0.15.2", "0.16.0", "0.17.0", "0.18.0",
            "0.19.0", "0.19.1", "0.20.0", "0.21.0", "0.22.0", "0.22.2", "0.23.0", "0.23.1", "0.24.0", "0.20.0rc1"],
    "transformers": ["4.46.2", "4.47.0", "4.50.0", "4.56.1"],
    "peft": ["0.13.2", "0.14.0", "0.17.0"],
}


class FakeRunner:
    """The check fails when `package` is at `first_bad` or later (in the direction good -> bad)."""

    def __init__(self, package, first_bad, cannot=(), also=None):
        self.package, self.first_bad, self.cannot, self.also = package, Version(first_bad), set(cannot), also
        self.calls = []

    def __call__(self, pins):
        self.calls.append(dict(pins))
        if any((name, version) in self.cannot for name, version in pins.items()):
            raise CannotRun("no wheel for this Python")
        broken = Version(pins[self.package]) >= self.first_bad
        if self.also is not None:  # an interaction: fails only with both upgrades
            name, version = self.also
            broken = broken and pins[name] == version
        return not broken


def test_finds_the_culprit_package_and_its_first_bad_release():
    runner = FakeRunner("trl", "0.20.0")
    lines = []
    result = bisect(GOOD, BAD, runner, releases=RELEASES.get, log=lines.append)
    assert result.culprit == "trl"
    finding = result.findings[0]
    assert (finding.good_version, finding.bad_version, finding.first_bad, finding.last_good) == ("0.12.1", "0.23.1", "0.20.0", "0.19.1")
    assert finding.context == "alone" and finding.untestable == []
    # Evidence: both ends (each run twice), every single move, then the release bisect (log(n) of 15 releases).
    labels = [t.label for t in result.trials]
    assert labels[:4] == ["good set", "good set, run again", "bad set", "bad set, run again"]
    assert "good + trl 0.12.1 -> 0.23.1" in labels and "good + peft 0.13.2 -> 0.17.0" in labels
    assert [t.outcome for t in result.trials if t.label.startswith("good + transformers")] == ["pass"]
    assert len([t for t in result.trials if "trl 0.12.1 -> 0." in t.label]) <= 1 + 5
    assert all(t.pins["transformers"] == "4.46.2" for t in result.trials[4:] if "trl" in t.label)
    report = result.report()
    assert "culprit: trl 0.12.1 -> 0.23.1; first bad release 0.20.0 (last good 0.19.1)" in report
    assert "[1] good set: PASS" in report and "[3] bad set: FAIL" in report
    assert lines[0] == "[1] good set: PASS"


def test_no_set_is_run_twice_but_the_ends():
    runner = FakeRunner("trl", "0.12.2")
    bisect(GOOD, BAD, runner, releases=RELEASES.get)
    keys = [tuple(sorted(c.items())) for c in runner.calls]
    assert keys[0] == keys[1] and keys[2] == keys[3]  # each end confirmed by a second run
    rest = keys[:1] + keys[2:3] + keys[4:]
    assert len(rest) == len(set(rest))


def test_an_end_that_flips_between_runs_is_reported_flaky_and_nothing_is_blamed():
    outcomes = iter([True, False])  # the good set passes, then fails on the same versions

    def flaky(pins):
        return next(outcomes)

    result = bisect(GOOD, BAD, flaky, releases=RELEASES.get)
    assert result.findings == [] and result.culprit is None
    assert "the check is flaky: the good set gave pass then fail on the same versions" in result.conclusion
    assert len(result.trials) == 2


def test_the_second_run_of_an_end_is_fresh_when_the_runner_can():
    calls = []

    def runner(pins, fresh=False):
        calls.append(fresh)
        return Version(pins["trl"]) < Version("0.20.0")

    bisect(GOOD, BAD, runner, releases=RELEASES.get)
    assert calls[:4] == [False, True, False, True] and not any(calls[4:])


def test_releases_that_cannot_run_are_skipped_and_the_answer_names_the_range():
    runner = FakeRunner("trl", "0.20.0", cannot={("trl", "0.19.1"), ("trl", "0.19.0"), ("trl", "0.20.0")})
    finding = bisect(GOOD, BAD, runner, releases=RELEASES.get).findings[0]
    assert finding.last_good == "0.18.0" and finding.first_bad == "0.21.0"
    assert finding.untestable == ["0.19.0", "0.19.1", "0.20.0"]
    assert "the first bad release is one of 0.19.0, 0.19.1, 0.20.0, 0.21.0" in finding.describe()


def test_an_interaction_is_found_by_applying_upgrades_cumulatively():
    # peft breaks only once transformers is upgraded too: no single move fails.
    runner = FakeRunner("peft", "0.14.0", also=("transformers", "4.56.1"))
    result = bisect(GOOD, BAD, runner, releases=RELEASES.get)
    assert result.culprit == "peft"
    finding = result.findings[0]
    assert finding.context == "huggingface-hub, transformers"
    assert finding.first_bad == "0.14.0" and finding.last_good == "0.13.2"
    assert "only together with the upgrades of huggingface-hub, transformers" in result.conclusion


def test_two_packages_that_each_break_it_are_both_reported():
    def runner(pins):
        return Version(pins["trl"]) < Version("0.20.0") and Version(pins["peft"]) < Version("0.14.0")

    result = bisect(GOOD, BAD, runner, releases=RELEASES.get)
    assert {f.package for f in result.findings} == {"trl", "peft"} and result.culprit is None
    assert {f.package: f.first_bad for f in result.findings} == {"peft": "0.14.0", "trl": "0.20.0"}
    assert result.conclusion.startswith("each of these upgrades alone fails the check")


def test_a_good_set_that_fails_or_a_bad_set_that_passes_stops_the_search():
    result = bisect(GOOD, BAD, lambda pins: False)
    assert result.findings == [] and "the good set does not pass the check (fail)" in result.conclusion
    assert len(result.trials) == 2
    result = bisect(GOOD, BAD, lambda pins: True)
    assert "the bad set does not fail the check (pass)" in result.conclusion


def test_without_a_release_list_the_answer_is_package_level():
    finding = bisect(GOOD, BAD, FakeRunner("trl", "0.20.0"), releases=None).findings[0]
    assert finding.first_bad == "0.23.1" and "releases not listed" in finding.releases_note


def test_an_index_error_keeps_the_package_level_answer():
    def releases(name):
        raise OSError("index unreachable")

    result = bisect(GOOD, BAD, FakeRunner("trl", "0.20.0"), releases=releases)
    assert result.culprit == "trl" and "could not list trl's releases (index unreachable)" in result.findings[0].releases_note


def test_a_downgrade_is_bisected_towards_the_bad_set():
    def runner(pins):  # the check breaks below trl 0.16.0
        return Version(pins["trl"]) >= Version("0.16.0")

    result = bisect(BAD, GOOD, runner, releases=RELEASES.get)
    finding = result.findings[0]
    assert (finding.package, finding.first_bad, finding.last_good) == ("trl", "0.15.2", "0.16.0")


def test_releases_between():
    assert releases_between(RELEASES["trl"], "0.19.0", "0.22.0") == ["0.19.1", "0.20.0", "0.21.0"]
    assert releases_between(RELEASES["trl"], "0.22.0", "0.19.0") == ["0.21.0", "0.20.0", "0.19.1"]
    assert releases_between(["1.0", "1.1rc1", "1.1", "bogus"], "0.9", "1.2") == ["1.0", "1.1"]
    assert releases_between(["1.0", "1.1rc1", "1.1"], "1.0", "1.1rc2") == ["1.1rc1"]


def test_pins_of_needs_exact_pins():
    assert pins_of(["TRL==0.12.1", "peft"]) == {"trl": "0.12.1", "peft": None}
    with pytest.raises(bisect_module.BisectError, match="exact pins"):
        pins_of(["trl>=0.12"])


def test_unpinned_packages_resolve_to_the_newest_final_release():
    resolved = bisect_module.resolve_unpinned({"trl": None, "peft": "0.13.2"}, lambda name: ["0.24.0", "0.25.0rc1", "0.23.1"])
    assert resolved == {"trl": "0.24.0", "peft": "0.13.2"}


def test_the_real_runner_passes_node_ids_as_is_and_anything_else_as_k():
    runner = bisect_module.VenvRunner(check="suites/test_labels.py::test_eos_keeps_its_label")
    assert runner.pytest_selection() == ["suites/test_labels.py::test_eos_keeps_its_label"]
    assert bisect_module.VenvRunner(check="eos and not hypothesis").pytest_selection() == ["suites", "-k", "eos and not hypothesis"]


def test_both_real_runners_run_the_check_with_one_command_and_one_reading_of_it(tmp_path, monkeypatch):
    from harness.versions import history

    calls = []

    def fake_call(command, stdout, stderr, cwd, env):
        calls.append({"command": command, "cache": env["YODA_HARNESS_CACHE"], "log": Path(stdout.name)})
        return 1  # a failed check

    monkeypatch.setattr(bisect_module.subprocess, "call", fake_call)
    monkeypatch.setattr(history, "swap_into", lambda *args, **kwargs: None)
    monkeypatch.setattr(bisect_module.VenvRunner, "_step", lambda self, command, log, what: None)
    common = dict(check="eos and not hypothesis", variant="trl-2024", overrides=("training.seed=1",), project_root=ROOT)
    swap = bisect_module.SwapRunner(python="/env/python", work_dir=tmp_path / "swap", **common)
    venv = bisect_module.VenvRunner(work_dir=tmp_path / "venv", **common)
    pins = {"trl": "0.12.1"}
    assert swap(pins, fresh=True) is False and venv(pins, fresh=True) is False
    (swapped, isolated) = calls
    for call in calls:
        command = call["command"]
        assert command[1:] == [
            "-m", "pytest", "suites", "-k", "eos and not hypothesis", "--yoda-profile", "tiny", "--yoda-cache-dir", call["cache"],
            "-p", "no:cacheprovider", "--yoda-variant", "trl-2024", "--yoda-fresh",
            "--yoda-override", "training.seed=1", "-q", command[-1]]
        assert command[-1].startswith("--yoda-result-json=")
        assert call["log"].read_text().startswith(f"$ {' '.join(command)}")
    assert swapped["command"][0] == "/env/python" and isolated["command"][0].endswith("venv/bin/python")
    # Exit 0 with no check run (no result JSON) cannot be read as a pass, whichever runner ran it.
    monkeypatch.setattr(bisect_module.subprocess, "call", lambda command, **kwargs: 0)
    for runner in (swap, venv):
        with pytest.raises(CannotRun, match="the check was skipped: no test ran"):
            runner(pins)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_any_injected_culprit_and_first_bad_release_is_found(data):
    count = data.draw(st.integers(1, 6), label="packages")
    names = [f"pkg{i}" for i in range(count)]
    releases = {name: [f"1.{minor}.0" for minor in range(data.draw(st.integers(2, 25), label=f"{name} releases"))]
                for name in names}
    good, bad = {}, {}
    for name in names:
        listed = releases[name]
        low = data.draw(st.integers(0, len(listed) - 2), label=f"{name} good")
        high = data.draw(st.integers(low + 1, len(listed) - 1), label=f"{name} bad")
        good[name], bad[name] = listed[low], listed[high]
    culprit = data.draw(st.sampled_from(names), label="culprit")
    listed = releases[culprit]
    low, high = listed.index(good[culprit]), listed.index(bad[culprit])
    first_bad = data.draw(st.integers(low + 1, high), label="first bad index")
    runner = FakeRunner(culprit, listed[first_bad])
    result = bisect(good, bad, runner, releases=releases.get)
    assert result.culprit == culprit
    finding = result.findings[0]
    assert finding.first_bad == listed[first_bad] and finding.last_good == listed[first_bad - 1]
    # Binary search: the release phase tries about log2(n) sets, never all of them.
    release_trials = len(result.trials) - 4 - count  # both ends twice, then each single move
    assert release_trials <= max(1, (high - low - 1).bit_length())


def test_cli_bisect_with_an_injected_runner_and_release_list(tmp_path, monkeypatch, capsys):
    versions = tmp_path / "versions.toml"
    versions.write_text('[sets.old]\npins = ["transformers==4.46.2", "trl==0.12.1"]\n'
                        '[sets.new]\npins = ["transformers==4.56.1", "trl"]\n')
    made = {}

    def fake_runner(**kwargs):
        made.update(kwargs)
        return FakeRunner("trl", "0.20.0")

    monkeypatch.setattr(bisect_module, "VenvRunner", fake_runner)
    monkeypatch.setattr(bisect_module, "pip_index_versions", lambda name: RELEASES[name])
    code = cli.main(["bisect", "--good", "old", "--bad", "new", "--check", "suites/test_labels.py::test_x",
                     "--versions", str(versions), "--profile", "tiny"])
    out = capsys.readouterr().out
    assert code == 0
    assert made["check"] == "suites/test_labels.py::test_x" and made["profile"] == "tiny"
    # The unpinned trl of the bad set was resolved to the newest final release (0.24.0).
    assert "culprit: trl 0.12.1 -> 0.24.0; first bad release 0.20.0 (last good 0.19.1)" in out
    assert "[3] bad set: FAIL" in out
    assert cli.main(["bisect", "--good", "old", "--bad", "nope", "--check", "x", "--versions", str(versions)]) == 2
    assert "no version set 'nope'; sets: old, new" in capsys.readouterr().err


def test_cli_bisect_runs_the_sets_profile(tmp_path, monkeypatch, capsys):
    """A pair about how the real model's files are read names its profile in versions.toml: bisect
    runs every trial on it (smollm2's structural checks run on a CPU) unless --profile says otherwise."""
    versions = tmp_path / "versions.toml"
    versions.write_text('[sets.good]\nprofile = "smollm2"\npins = ["transformers==5.18.0"]\n'
                        '[sets.bad]\nprofile = "smollm2"\npins = ["transformers==5.16.0"]\n'
                        '[sets.other]\nprofile = "tiny"\npins = ["transformers==5.16.0"]\n')
    made = {}

    def fake_runner(**kwargs):
        made.update(kwargs)
        # A fix: every release up to 5.17.0 misreads, 5.18.0 reads the tokens as the file says.
        return lambda pins: Version(pins["transformers"]) >= Version("5.18.0")

    monkeypatch.delenv("YODA_HARNESS_PROFILE", raising=False)
    monkeypatch.setattr(bisect_module, "VenvRunner", fake_runner)
    monkeypatch.setattr(bisect_module, "pip_index_versions",
                        lambda name: ["5.16.0", "5.16.1", "5.17.0", "5.18.0"])
    code = cli.main(["bisect", "--good", "good", "--bad", "bad", "--check", "suites/test_tokens.py",
                     "--versions", str(versions)])
    out = capsys.readouterr().out
    assert code == 0 and made["profile"] == "smollm2"
    assert "profile smollm2" in out
    # From the fix towards the older release: the first that misreads is the last before the fix.
    assert "culprit: transformers 5.18.0 -> 5.16.0; first bad release 5.17.0 (last good 5.18.0)" in out
    assert cli.main(["bisect", "--good", "good", "--bad", "other", "--check", "x", "--versions", str(versions)]) == 2
    assert "name different profiles (smollm2, tiny); choose one with --profile" in capsys.readouterr().err
