"""The one outer loop: run the suites in an environment (an installed version set's python) and read
back the session's own result.

The nox sessions (noxfile.py), the history (harness.versions.history), bisect and the gate all run
the suites through `run_suites`; each reads the verdicts the plugin wrote (`--yoda-result-json`,
harness.checks.result), never re-derives them from the output or from JUnit XML (which a caller may
still ask pytest to write, for CI artifacts).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterable, TextIO

from harness.checks.result import SessionResult


def suite_args(selection: Iterable[str], profile: str, cache_dir: Path | str, *, variant: str | None = None,
               fresh: bool = False, overrides: Iterable[str] = (), extra: Iterable[str] = ()) -> list[str]:
    """pytest's arguments for one session of the suites: the selection, the profile, a cache of its own."""
    args = [*selection, "--yoda-profile", profile, "--yoda-cache-dir", str(cache_dir), "-p", "no:cacheprovider"]
    args += (["--yoda-variant", variant] if variant else []) + (["--yoda-fresh"] if fresh else [])
    for override in overrides:
        args += ["--yoda-override", override]
    return args + list(extra)


def cache_environment(cache_dir: Path | str, base: dict | None = None) -> dict[str, str]:
    """The environment of a session whose runs and built models live in `cache_dir`, offline from the hub."""
    environment = dict(os.environ if base is None else base, YODA_HARNESS_CACHE=str(cache_dir),
                       YODA_HARNESS_MODELS_DIR=str(Path(cache_dir) / "models"), PYTHONUNBUFFERED="1")
    environment.setdefault("HF_HUB_OFFLINE", "1")
    environment.setdefault("HF_DATASETS_OFFLINE", "1")
    return environment


def command(python: str | Path, args: Iterable[str], result_path: Path) -> list[str]:
    return [str(python), "-m", "pytest", *args, f"--yoda-result-json={result_path}"]


def run_suites(python: str | Path, args: Iterable[str], *, result_path: Path, log_path: Path,
               cwd: Path | str | None = None, env: dict | None = None, echo: TextIO | None = None) -> SessionResult:
    """`python -m pytest ARGS --yoda-result-json RESULT_PATH`; the session's result.

    The command and pytest's output go to `log_path` (and, as they come, to `echo`). The exit status
    is the process's; a session that wrote no result (a usage error, pytest not starting) reads as a
    result with that status and no checks.
    """
    result_path.unlink(missing_ok=True)
    argv = command(python, args, result_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        if echo is None:
            code = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        else:
            code = _tee(argv, log, echo, cwd, env)
    if code < 0:  # killed by a signal: as a shell reports it
        code = 128 - code
    if not result_path.is_file():
        return SessionResult(profile=None, exit_status=code)
    result = SessionResult.read(result_path)
    result.exit_status = code
    return result


def _tee(command: list[str], log, echo: TextIO, cwd, env) -> int:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                               cwd=cwd, env=env)
    for line in process.stdout:
        echo.write(line)
        echo.flush()
        log.write(line)
    return process.wait()
