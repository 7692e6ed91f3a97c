"""The library-version fingerprint of a run: what a baseline entry is keyed by."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata

# Every library that shapes a run's result: jinja2 renders each chat template, gguf reads the
# SmolLM2 weights, numpy sits under datasets and sacrebleu.
TRACKED_PACKAGES = (
    "torch", "transformers", "peft", "trl", "bitsandbytes", "datasets",
    "accelerate", "sacrebleu", "tokenizers", "huggingface-hub", "safetensors",
    "jinja2", "gguf", "numpy",
)


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each named distribution (None: not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_facts() -> dict:
    import torch

    if torch.cuda.is_available():
        return {
            "kind": "cuda",
            "name": torch.cuda.get_device_name(0),
            "cuda": torch.version.cuda,
            "count": torch.cuda.device_count(),
        }
    return {"kind": "cpu", "name": platform.processor() or platform.machine(), "cuda": None, "count": 0}


def fingerprint() -> dict:
    return {"python": platform.python_version(), "packages": package_versions(), "device": device_facts()}


def version_set_id(env: dict) -> str:
    """Short stable id of the library versions alone (device kept separately)."""
    canonical = json.dumps(env["packages"], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def device_kind(env: dict) -> str:
    """What a baseline entry is keyed by: 'cpu' or the GPU's model name, and the process count past
    one ('NVIDIA H200, 2 processes'). Over N processes a run takes 1/N of the optimizer steps and
    another batch per step: it is another run, never compared with a 1-process entry as the same."""
    device = env["device"]
    kind = "cpu" if device["kind"] == "cpu" else device["name"]
    processes = env.get("processes", 1)  # recorded before runs knew their process count: one
    return kind if processes == 1 else f"{kind}, {processes} processes"


def changed_packages(old: dict, new: dict) -> list[str]:
    """'trl 1.15.0 → 1.16.0' for each tracked package whose version differs."""
    changes = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            changes.append(f"{name} {old.get(name) or 'absent'} → {new.get(name) or 'absent'}")
    return changes


def harness_source_digest(root=None) -> str:
    """sha256 of the harness package's own files: a change to what the harness does is a new run."""
    from pathlib import Path

    root = Path(root or Path(__file__).resolve().parent)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and p.suffix not in (".pyc", ".pyo")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def harness_revision() -> dict:
    """Which harness made a run or a baseline: source digest, and the git commit when in a checkout."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent
    revision = {"source": harness_source_digest(), "commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0:
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "."],
                                    capture_output=True, text=True, timeout=10)
            revision.update(commit=commit.stdout.strip(), dirty=bool(status.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        pass  # not a checkout (an installed package): the source digest still says which code ran
    return revision


def describe_revision(revision: dict) -> str:
    if revision.get("commit"):
        return f"{revision['commit'][:10]}{' (dirty)' if revision.get('dirty') else ''}"
    return f"source {revision['source']}"
