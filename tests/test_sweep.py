"""`python -m harness sweep` with a fake runner (no pytest runs, no training: fast, CPU)."""

import json
import threading
import time
from pathlib import Path

import pytest

from harness import cli
from harness.versions import sweep
from harness.versions.sweep import Job, JobsError, parse_jobs

FIXTURE = Path(__file__).parent / "fixtures" / "run_tiny"

JOBS = """\
# NAME WORD...: the tiny profile over two seeds, and a deeper model from a profile file
s0 training.seed=0
s1 training.seed=1   # a comment after a run
d12-s0 profile:deeper.toml env:PYTEST_ADDOPTS=--deselect=suites/test_labels.py::test_x training.seed=0

"""


def _result(path: Path, broken: int, changed: int, headline: str, tests=10, failures=0, skipped=2) -> None:
    """The session's result JSON as the plugin writes it (harness.checks.result)."""
    from harness.checks.result import Finding, SessionResult

    def findings(count):
        return [Finding(f"suites/test_x.py::test_{i}", f"test_{i}", "x") for i in range(count)]

    SessionResult(profile="tiny", exit_status=1 if failures else 0, headline=headline, broken=findings(broken),
                  changed=findings(changed),
                  counts={"passed": tests - failures - skipped, "failed": failures, "error": 0, "skipped": skipped}).write(path)


def _trained_run(runs: Path, stop_rate: float, bleu: float) -> None:
    directory = runs / "abc123"
    directory.mkdir(parents=True)
    record = json.loads((FIXTURE / "run.json").read_text())  # a whole record, with the figures read here
    record.update(status="complete", stage="trained")
    record["training"].update(global_step=348, loss_history=[{"step": 10, "loss": 5.5}, {"step": 340, "loss": 2.25}])
    record["metrics"]["tuned"].update(non_empty_stop_rate=stop_rate, mean_words=9.5)
    record["metrics"]["tuned"]["vs_translation_extra"]["bleu"] = bleu
    record["metrics"]["base"]["non_empty_stop_rate"] = 0.0
    record["metrics"]["base"]["vs_translation_extra"]["bleu"] = 0.1
    (directory / "run.json").write_text(json.dumps(record))


class FakeRunner:
    """Writes what a pytest session of the harness would: the plugin's result JSON and,
    for a run that trained, its record; seed 1 breaks an invariant, a `crash` override never writes."""

    def __init__(self, seconds=0.05):
        self.seconds, self.calls, self.lock = seconds, [], threading.Lock()
        self.running = self.most_at_once = 0

    def __call__(self, job, paths, threads, timeout):
        with self.lock:
            self.calls.append((job.name, threads, timeout))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if timeout is not None and timeout < self.seconds:
                time.sleep(max(timeout, 0))
                return sweep.TIMED_OUT
            time.sleep(self.seconds)
            if "crash=1" in job.overrides:
                return 3
            if "training.seed=1" in job.overrides:
                _result(paths.result, 1, 0, "1 thing broke: test_stops (stop rate 40 % < 80 %); nothing changed",
                       failures=1)
                _trained_run(paths.cache / "runs", 0.4, 1.5)
                return 1
            _result(paths.result, 0, 0, "nothing broke; nothing changed")
            _trained_run(paths.cache / "runs", 1.0, 2.25)
            return 0
        finally:
            with self.lock:
                self.running -= 1


def test_a_jobs_file_gives_one_run_a_line(tmp_path):
    (tmp_path / "jobs.txt").write_text(JOBS)
    jobs = parse_jobs(tmp_path / "jobs.txt", "tiny")
    assert [job.name for job in jobs] == ["s0", "s1", "d12-s0"]
    assert jobs[0] == Job("s0", "tiny", ("training.seed=0",), (), 2)
    assert jobs[1].overrides == ("training.seed=1",)
    # A profile file is relative to the jobs file; env words are the run's alone.
    assert jobs[2].profile == str(tmp_path / "deeper.toml")
    assert jobs[2].env == (("PYTEST_ADDOPTS", "--deselect=suites/test_labels.py::test_x"),)
    assert jobs[0].environment_tag() == jobs[1].environment_tag() == "default" != jobs[2].environment_tag()


@pytest.mark.parametrize("line, message", [
    ("s0 training.seed", "jobs.txt:2: 'training.seed': expected KEY=VALUE (a recipe override), profile:NAME_OR_FILE "
                         "or env:NAME=VALUE"),
    ("s0 env:OMP_NUM_THREADS", "jobs.txt:2: 'env:OMP_NUM_THREADS': expected env:NAME=VALUE"),
    ("training.seed=0", "jobs.txt:2: 'training.seed=0': a line starts with the run's name"),
    ("x0 training.seed=2", "jobs.txt:2: 'x0': the name of line 1 again"),
    ("s0 profile:", "jobs.txt:2: profile: expected a profile name or file"),
])
def test_a_line_it_cannot_use_names_the_file_and_the_line(tmp_path, line, message):
    (tmp_path / "jobs.txt").write_text(f"x0 training.seed=1\n{line}\n")
    with pytest.raises(JobsError) as error:
        parse_jobs(tmp_path / "jobs.txt", "tiny")
    assert message in str(error.value)


def test_an_unknown_override_or_profile_fails_before_anything_runs(tmp_path):
    (tmp_path / "jobs.txt").write_text("a training.seed=0\nb training.learnin_rate=1\n")
    with pytest.raises(JobsError, match="line 2 .b.: --override: unknown recipe config option 'training.learnin_rate'"):
        sweep.check_jobs(parse_jobs(tmp_path / "jobs.txt", "tiny"))
    (tmp_path / "jobs.txt").write_text("a profile:missing.toml\n")
    with pytest.raises(JobsError, match="line 1 .a.: profile file .*missing.toml: no such file"):
        sweep.check_jobs(parse_jobs(tmp_path / "jobs.txt", "tiny"))


def test_the_sweep_runs_every_job_in_parallel_and_tables_what_each_came_to(tmp_path):
    jobs = [Job(f"s{seed}", "tiny", (f"training.seed={seed}",)) for seed in range(4)] + [Job("bad", "tiny", ("crash=1",))]
    runner, lines = FakeRunner(seconds=0.2), []
    results = sweep.sweep(jobs, tmp_path, runner, parallel=2, threads=3, log=lines.append)
    assert [r.name for r in results] == ["s0", "s1", "s2", "s3", "bad"]  # the jobs' order, whatever finished first
    assert runner.most_at_once == 2 and {threads for _, threads, _ in runner.calls} == {3}
    ok, broke, crashed = results[0], results[1], results[4]
    assert (ok.exit, ok.broken, ok.changed, ok.verdict) == (0, 0, 0, "nothing broke; nothing changed")
    assert ok.tests == {"passed": 8, "failed": 0, "errors": 0, "skipped": 2}
    assert ok.learned["non_empty_stop_rate"] == 1.0 and ok.learned["steps"] == 348
    assert (broke.exit, broke.broken) == (1, 1) and broke.reached_a_verdict
    assert (crashed.exit, crashed.verdict, crashed.learned, crashed.reached_a_verdict) == (3, "", {}, False)
    assert any(line.startswith("bad: exit 3 (internal error)") for line in lines)

    text = sweep.write_results(results, tmp_path)
    rows = text.splitlines()
    assert rows[0].startswith("| run | exit | s | passed / failed / skipped | BROKEN | CHANGED |")
    assert rows[2].startswith("| s0 | exit 0 (every check held) |")
    assert rows[2].endswith("| 8 / 0 / 2 | 0 | 0 | 100% | 2.25 / 0.10 | 9.5 | 5.50 -> 2.25 |")
    assert "| 1 thing broke: test_stops (stop rate 40 % < 80 %) | 0 | 40% | 1.50 / 0.10 |" in rows[3]
    assert rows[6] == "| bad | exit 3 (internal error) | 0 |  |  |  |  |  |  |  |"
    assert (tmp_path / "table.md").read_text() == text
    assert [r["name"] for r in json.loads((tmp_path / "sweep.json").read_text())] == ["s0", "s1", "s2", "s3", "bad"]


def test_a_deadline_stops_the_run_still_going_and_starts_no_more(tmp_path):
    jobs = [Job(f"s{seed}", "tiny", (f"training.seed={seed}",)) for seed in range(3)]
    results = sweep.sweep(jobs, tmp_path, FakeRunner(seconds=0.5), parallel=1, deadline=0.2, log=lambda line: None)
    assert [r.exit for r in results] == [sweep.TIMED_OUT, sweep.NOT_STARTED, sweep.NOT_STARTED]
    assert "| s1 | not started |" in sweep.table(results)


def test_a_second_sweep_into_the_same_directory_does_not_read_the_first_ones_verdicts(tmp_path):
    job = Job("s0", "tiny", ("training.seed=0",))
    sweep.sweep([job], tmp_path, FakeRunner(), log=lambda line: None)
    crashing = lambda job, paths, threads, timeout: 2  # noqa: E731  (interrupted: no result written)
    [result] = sweep.sweep([job], tmp_path, crashing, log=lambda line: None)
    assert (result.exit, result.verdict, result.broken) == (2, "", None)


def test_the_real_runner_runs_the_suites_with_the_job_s_profile_overrides_environment_and_threads(tmp_path):
    runner = sweep.PytestRunner(python="/venv/bin/python", root=tmp_path, pytest_args=("-m", "yoda_structural"))
    job = Job("d12", str(tmp_path / "deeper.toml"), ("training.seed=3", "training.num_train_epochs=1"),
              (("PYTHONPATH", "/sets/2024"), ("OMP_NUM_THREADS", "4")))
    paths = sweep.paths_of(job, tmp_path / "out")
    command = runner.command(job, paths)
    assert command[:4] == ["/venv/bin/python", "-m", "pytest", "--pyargs"]  # no suites/ here: the installed ones
    (tmp_path / "suites").mkdir()
    command = runner.command(job, paths)
    assert command[:4] == ["/venv/bin/python", "-m", "pytest", "suites"]
    assert command[4:10] == ["--yoda-profile", str(tmp_path / "deeper.toml"), "--yoda-override", "training.seed=3",
                             "--yoda-override", "training.num_train_epochs=1"]
    assert f"--yoda-result-json={tmp_path / 'out' / 'd12' / 'result.json'}" in command and command[-2:] == ["-m", "yoda_structural"]
    environment = runner.environment(job, paths, threads=2)
    assert environment["MKL_NUM_THREADS"] == "2" and environment["OMP_NUM_THREADS"] == "4"  # the job's own word wins
    assert environment["PYTHONPATH"] == "/sets/2024"
    assert environment["YODA_HARNESS_CACHE"] == str(tmp_path / "out" / "d12" / "cache")
    assert environment["YODA_HARNESS_MODELS_DIR"] == str(tmp_path / "out" / "models" / job.environment_tag())


def test_the_command_prints_the_table_and_fails_when_a_run_reached_no_verdict(tmp_path, monkeypatch, capsys):
    (tmp_path / "jobs.txt").write_text("s0 training.seed=0\ns1 training.seed=1\nbad training.seed=2 env:CRASH=1\n")
    seen = {}

    class Runner(FakeRunner):
        def __init__(self, python, root, pytest_args):
            super().__init__()
            seen.update(python=python, pytest_args=pytest_args)

        def prepare(self, jobs, out, log):
            seen["prepared"] = [job.name for job in jobs]

        def __call__(self, job, paths, threads, timeout):
            return 2 if job.env else super().__call__(job, paths, threads, timeout)

    monkeypatch.setattr(sweep, "PytestRunner", Runner)
    status = cli.main(["sweep", str(tmp_path / "jobs.txt"), "--out", str(tmp_path / "out"), "--threads", "2",
                       "--parallel", "2", "--", "-m", "yoda_structural"])
    out, err = capsys.readouterr()
    assert status == 1
    assert seen["pytest_args"] == ("-m", "yoda_structural") and seen["prepared"] == ["s0", "s1", "bad"]
    assert out.startswith(f"sweep {tmp_path / 'jobs.txt'}: 3 runs, 2 at a time, 2 thread(s) each")
    assert "| s1 | exit 1 (a check failed) |" in out and "| bad | exit 2 (interrupted) |" in out
    assert "1 of 3 runs reached no verdict: bad (their pytest.log says why)" in err


def test_a_bad_jobs_file_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "jobs.txt").write_text("s0 training.seed\n")
    assert cli.main(["sweep", str(tmp_path / "jobs.txt")]) == 2
    assert capsys.readouterr().err == (f"yoda-harness: error: {tmp_path / 'jobs.txt'}:1: 'training.seed': expected "
                                       "KEY=VALUE (a recipe override), profile:NAME_OR_FILE or env:NAME=VALUE\n")
