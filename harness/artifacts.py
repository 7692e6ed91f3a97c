"""The run directory: atomic writes, the cache key, finished-run lookup and a lock.

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
from typing import Any

MANIFEST = "run.json"
COMPLETE = "complete"


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temp file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, ensure_ascii=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(temporary, path)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safetensors_summary(path: Path) -> dict:
    """Tensor count, parameter count, dtypes and data bytes of a safetensors file, from its header."""
    with open(path, "rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_length))
    tensors = {name: spec for name, spec in header.items() if name != "__metadata__"}
    parameters = 0
    for spec in tensors.values():
        count = 1
        for size in spec["shape"]:
            count *= size
        parameters += count
    return {
        "tensors": len(tensors),
        "parameters": parameters,
        "dtypes": sorted({spec["dtype"] for spec in tensors.values()}),
        "data_bytes": path.stat().st_size - 8 - header_length,
    }
