"""A finished run planted in a cache, so `pytest suites` reuses it instead of training.

The committed fixture run (tests/fixtures/run_tiny) is copied under the cache key that the
current code, libraries and tiny profile compute, and its manifest edited as a test needs: the
suites then check it in seconds. Only checks that need no live objects (no adapter is stored)
can run on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness import env, files
from harness.recipe import profiles
from harness.run import artifacts, stages
from tests import sessions

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "run_tiny"


def plant_run(cache: Path, models_dir: Path, edit=None, edit_batch=None, overrides: dict | None = None) -> Path:
    """Copy the fixture run into `cache`/runs under the tiny profile's current key (with `overrides`
    applied to its recipe config: `{"training.seed": 1}`); return its directory."""
    profile = profiles.PROFILES["tiny"]
    config = profile.recipe_config().with_overrides(overrides or {})
    # The key holds the CPU pins in force; an in-process session of another profile earlier in this
    # process (a pytester run under the same xdist worker) pinned others. Key it as a tiny session does.
    env.pin(profile.cpu)
    inputs = stages.run_inputs(profile, profiles.ModelOptions(models_dir=models_dir), config)
    directory = cache / "runs" / inputs.key
    shutil.copytree(FIXTURE, directory)
    manifest = files.read_json(directory / artifacts.MANIFEST)
    manifest.update(key=inputs.key, status=artifacts.COMPLETE)
    if edit:
        edit(manifest)
    files.write_json(directory / artifacts.MANIFEST, manifest)
    if edit_batch:
        batch = files.read_json(directory / "collated_batch.json")
        edit_batch(batch)
        files.write_json(directory / "collated_batch.json", batch)
    return directory


def run_suites(cache: Path, models_dir: Path, *args: str, **environment: str) -> subprocess.CompletedProcess:
    """`python -m pytest ARGS --yoda-profile tiny` on this repo's suites with `cache` (no training if planted)."""
    env = dict(os.environ, YODA_HARNESS_MODELS_DIR=str(models_dir), YODA_HARNESS_QUIET="1")
    env.update(environment)
    env.pop("YODA_HARNESS_PROFILE", None)
    command = [sys.executable, "-m", "pytest", "--yoda-profile", "tiny", "--yoda-cache-dir", str(cache),
               "-p", "no:cacheprovider", *args]
    return sessions.run(command, cwd=ROOT, env=env, timeout=900)


def tree_digest(directory: Path) -> dict[str, str]:
    """Every file under `directory` and its sha256: equal before and after = not written to."""
    return {str(p.relative_to(directory)): files.file_sha256(p) for p in sorted(directory.rglob("*")) if p.is_file()}
