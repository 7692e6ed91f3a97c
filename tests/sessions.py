"""`python -m pytest ...` and `python -m harness ...` for the tests, forked from a process that has
already imported the heavy libraries.

Most of a structural suites session's time on two cores is importing torch, transformers, trl,
peft, bitsandbytes and datasets (about 6.5 s of 9). A `multiprocessing` forkserver imports them
once per test process, and each session is forked from it: still a process of its own (its
patches, its exit status, its output and files), started with those modules loaded. Only the
libraries are preloaded, not the harness or pytest's plugins, which each session imports itself.

A library reads some environment variables once, at import (torch its CPU dispatch, the hub its
offline switch), so a session runs forked only when its environment equals the server's but for
variables read at run time (the harness's own, pytest's per-test ones); any other command or
environment runs as a plain subprocess, as before.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRELOAD = ("torch", "transformers", "datasets", "accelerate", "bitsandbytes", "peft", "trl",
           "trl.trainer.sft_trainer", "sacrebleu")
FORKED_MODULES = ("pytest", "harness")
READ_AT_RUN_TIME = ("YODA_HARNESS_", "PYTEST_")

_server: dict = {}


def run(command: list[str], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)."""
    env = dict(os.environ if env is None else env)
    cwd = str(cwd or os.getcwd())
    if not _forkable(command, env):
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    context = _context()
    with tempfile.TemporaryDirectory(prefix="yoda-session-") as scratch:
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        process = context.Process(target=_session, args=(command[2], command[3:], cwd, env, str(out), str(err)))
        process.start()
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(command, timeout, out.read_text(errors="replace"), err.read_text(errors="replace"))
        return subprocess.CompletedProcess(command, process.exitcode, out.read_text(errors="replace"),
                                           err.read_text(errors="replace"))


def _forkable(command: list[str], env: dict[str, str]) -> bool:
    if command[:2] != [sys.executable, "-m"] or len(command) < 3 or command[2] not in FORKED_MODULES:
        return False
    server_env = _server.get("env", os.environ)
    return _without_run_time(env) == _without_run_time(server_env)


def _without_run_time(env) -> dict[str, str]:
    return {key: value for key, value in env.items() if not key.startswith(READ_AT_RUN_TIME)}


def _context():
    """The forkserver, started at first use with this process's environment and preloads."""
    if "context" not in _server:
        if str(ROOT) not in sys.path:  # the server imports this module by name to run a session
            sys.path.insert(0, str(ROOT))
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
        _server.update(context=context, env=dict(os.environ))
    return _server["context"]


def _session(module: str, args: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    """In the forked process: what `python -m MODULE ARGS` would do, in `cwd` with `env`."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, cwd)  # `python -m` puts the working directory first
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = [module, *args]
    code: int | str | None = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code
    finally:
        atexit._run_exitfuncs()  # what the interpreter runs at exit (a forked child skips it)
        sys.stdout.flush()
        sys.stderr.flush()
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    sys.exit(code or 0)
