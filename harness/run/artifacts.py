"""The run directory: the cache key, finished-run lookup and a lock.

A run is staged in a hidden sibling directory and renamed into place only when every file is
written, with `run.json` (status "complete") last: a run that did not finish never has a
directory under its key, so it can never be reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

from harness.files import read_json

MANIFEST = "run.json"
COMPLETE = "complete"


def cache_key(profile: str, config: dict, env: dict, model_identity: str, data_identity: str,
              harness_source: str) -> str:
    """Same key = same recipe inputs (the harness's own source included), so the finished run can be reused."""
    canonical = json.dumps(
        {"profile": profile, "config": config, "env": env, "model": model_identity, "data": data_identity,
         "harness": harness_source},
        sort_keys=True,
    )
    return f"{profile}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def finished_run(runs_dir: Path, key: str) -> Path | None:
    directory = runs_dir / key
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return None
    try:
        if read_json(manifest).get("status") != COMPLETE:
            return None
    except (OSError, ValueError):
        return None
    return directory


def staging_dir(runs_dir: Path, key: str) -> Path:
    staging = runs_dir / f".{key}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, runs_dir: Path, key: str) -> Path:
    """Move a fully written staging directory into place (replacing an older run of the key)."""
    final = runs_dir / key
    if final.exists():
        retired = runs_dir / f".{key}.retired-{os.getpid()}"
        os.replace(final, retired)
        shutil.rmtree(retired, ignore_errors=True)
    os.replace(staging, final)
    return final


@contextlib.contextmanager
def run_lock(runs_dir: Path, key: str):
    """One process trains a key at a time; pytest-xdist workers wait and then reuse its run."""
    from filelock import FileLock

    runs_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(runs_dir / f".{key}.lock"):
        yield
