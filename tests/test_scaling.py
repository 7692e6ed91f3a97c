"""Past one process, on CPU: the recipe under torchrun (2 processes, gloo), and the suites spread
over 2 pytest-xdist workers that share one recipe run (docs/scaling.md).

Each case runs the tiny profile on 48 rows for one epoch in subprocesses with a time limit, so a
rank or worker that hangs at a barrier or on the run lock fails the test instead of hanging CI.
"""

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from harness import files
from harness.recipe.metrics import expected_optimizer_steps
from harness.run import artifacts

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def run_command(command: list[str], log: Path, **env: str) -> str:
    """Run `command` with a time limit; its output (ending in its exit status), or a failure if it hangs."""
    # One thread a process, as torchrun sets by default: two processes of two threads each on a
    # shared 2-core machine oversubscribe it, and training runs ten times slower.
    environment = dict(os.environ, OMP_NUM_THREADS="1", YODA_HARNESS_QUIET="1", **env)
    # Output to a file, not a pipe: a stray rank holding a pipe open would block the reader.
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop(process)
            pytest.fail(f"{' '.join(command[:6])} ... still running after {TIMEOUT_S}s (hung?):\n"
                        f"{log.read_text()[-3000:]}")
    return log.read_text() + f"\n[exit status {process.returncode}]"


def stop(process: subprocess.Popen) -> None:
    """Stop a launcher and what it started. torchrun runs each rank in a session of its own, out of
    reach of a signal to the launcher's group: SIGTERM makes torchrun stop its ranks (SIGTERM, then
    SIGKILL after 30 s); SIGKILL to the group follows if it has not exited a minute later."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def finished_runs(runs: Path) -> list[Path]:
    return [path for path in runs.iterdir() if artifacts.finished_run(runs, path.name) is not None]


# ------------------------------------------------------------------ torchrun / accelerate launch
LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"],
    # --multi_gpu picks accelerate's torchrun launcher; without CUDA its ranks use gloo. (`--cpu`
    # starts several processes only through mpirun and a hostfile: without one it starts one.)
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_publish_one_run(launcher, tmp_path, small_cli_overrides):
    command = [sys.executable, *LAUNCHERS[launcher], "-m", "harness", "run", "--profile", "tiny",
               "--cache-dir", str(tmp_path / "cache"), *small_cli_overrides]
    # An empty models directory: rank 0 builds the tiny checkpoint while rank 1 waits at the barrier.
    output = run_command(command, tmp_path / "launch.log", YODA_HARNESS_MODELS_DIR=str(tmp_path / "models"))
    assert output.endswith("[exit status 0]"), output[-4000:]

    runs = tmp_path / "cache" / "runs"
    finished = finished_runs(runs)
    assert len(finished) == 1, f"finished run directories: {[p.name for p in finished]}"
    leftovers = [p.name for p in runs.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert leftovers == [], f"staging directories left behind: {leftovers}"
    summaries = [line for line in output.splitlines() if line.startswith("run       ")]
    assert len(summaries) == 1, f"rank 0 alone prints the run: {summaries}"

    manifest = files.read_json(finished[0] / artifacts.MANIFEST)
    assert manifest["environment"]["processes"] == 2
    training, config = manifest["training"], manifest["config"]["training"]
    # Each optimizer step takes one batch on each process: the global batch is twice the per-device one.
    steps = [expected_optimizer_steps(training["packed_rows_predicted"], training["train_batch_size"] * processes,
                                      config["num_train_epochs"], config["gradient_accumulation_steps"])
             for processes in (1, 2)]
    assert training["global_step"] == steps[1] < steps[0], (
        f"{training['global_step']} steps; wrapped packing implies {steps[1]} on 2 processes, {steps[0]} on 1"
    )
    assert training["lora_b_abs_sum_after"] > 0, "the adapters did not train"
    assert (finished[0] / "adapter" / "adapter_model.safetensors").is_file()
    assert len(files.read_jsonl(finished[0] / "generations_tuned.jsonl")) == manifest["data"]["eval_rows"]


# ------------------------------------------------------------------ pytest-xdist
def spread_suites(cache: Path, models: Path, overrides: list[str], session: str, *extra: str) -> dict:
    """`pytest -n 2 suites` on the small config: what the log plugin saw, and the errors."""
    log, junit = cache / f"{session}.log", cache / f"{session}.xml"
    command = [sys.executable, "-m", "pytest", "-n", "2", "--testrunuid", session, "suites", "--yoda-profile", "tiny",
               "--yoda-cache-dir", str(cache), "--yoda-baselines-dir", str(cache / "no-baselines"), *overrides,
               "-p", "tests.training_log", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *extra]
    output = run_command(command, cache / f"{session}.out", YODA_HARNESS_MODELS_DIR=str(models),
                         YODA_HARNESS_TRAIN_LOG=str(log))
    # Exit status 1 is expected: without baselines and on 48 rows the threshold checks fail. An
    # error (a fixture that could not train, reuse or rebuild the run) is what this test is after.
    assert output.endswith(("[exit status 0]", "[exit status 1]")) and junit.exists(), output[-4000:]
    errors = [f"{case.get('name')}: {case.find('error').get('message', '')[:300]}"
              for case in ElementTree.parse(junit).iter("testcase") if case.find("error") is not None]
    events = [line.split(" ", 2) for line in log.read_text().splitlines()]
    manifests = [files.read_json(path / artifacts.MANIFEST) for path in finished_runs(cache / "runs")]
    return {"output": output, "errors": errors, "manifests": manifests,
            "trained": [e[1] for e in events if e[0] == "train"],
            "rebuilt": [e[1] for e in events if e[0] == "rebuild"],
            "checked": {e[1] for e in events if e[0] == "check"}}


@pytest.fixture(scope="module")
def spread_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spread")


@pytest.fixture(scope="module")
def first_spread(spread_cache, shared_models_dir, small_overrides) -> dict:
    return spread_suites(spread_cache, shared_models_dir, small_overrides, "session-one")


def test_xdist_workers_train_once_and_share_the_run(first_spread):
    assert first_spread["errors"] == [], first_spread["errors"]
    assert len(first_spread["trained"]) == 1, f"trained by {first_spread['trained']}\n{first_spread['output'][-3000:]}"
    assert first_spread["checked"] == {"gw0", "gw1"}, f"workers that ran checks: {first_spread['checked']}"
    # The prepared stage and the trained run, both of this session.
    assert sorted(m.get("stage") for m in first_spread["manifests"]) == ["prepared", "trained"]
    assert [m["session"] for m in first_spread["manifests"]] == ["session-one", "session-one"]


def test_xdist_fresh_trains_once_per_session(first_spread, spread_cache, shared_models_dir, small_overrides):
    """`--yoda-fresh` in every worker: the earlier session's run is replaced, by one training, not two;
    the worker that did not prepare the stage itself prepares its live objects (once)."""
    fresh = spread_suites(spread_cache, shared_models_dir, small_overrides, "session-two", "--yoda-fresh")
    assert fresh["errors"] == [], fresh["errors"]
    assert len(fresh["trained"]) == 1, f"trained by {fresh['trained']}\n{fresh['output'][-3000:]}"
    assert fresh["checked"] == {"gw0", "gw1"}, f"workers that ran checks: {fresh['checked']}"
    assert len(fresh["rebuilt"]) <= 1, f"live objects prepared again by {fresh['rebuilt']}"
    assert sorted(m["session"] for m in fresh["manifests"]) == ["session-two", "session-two"], (
        "the earlier session's run (or prepared stage) was reused")


def test_report_under_xdist_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("-n", "2", "--yoda-report", "report.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--yoda-report needs every check's outcome in one process: run it without -n*"])
