"""The library-version fingerprint of a run: what a baseline entry is keyed by."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata

TRACKED_PACKAGES = (
    "torch", "transformers", "peft", "trl", "bitsandbytes", "datasets",
    "accelerate", "sacrebleu", "tokenizers", "huggingface-hub", "safetensors",
)


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in TRACKED_PACKAGES:
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
    """What a baseline entry is keyed by: 'cpu', or the GPU's model name."""
    device = env["device"]
    return "cpu" if device["kind"] == "cpu" else device["name"]


def changed_packages(old: dict, new: dict) -> list[str]:
    """'trl 1.15.0 → 1.16.0' for each tracked package whose version differs."""
    changes = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            changes.append(f"{name} {old.get(name) or 'absent'} → {new.get(name) or 'absent'}")
    return changes
