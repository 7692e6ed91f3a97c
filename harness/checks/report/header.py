"""The page's header: what ran (profile, model, run id), where (device, Python) and with which libraries."""

from __future__ import annotations

from harness import env


def header_context(run, comparison=None) -> dict:
    manifest = run.manifest
    environment = manifest.get("environment") or {}
    entry = getattr(comparison, "entry", None) or {}
    return {
        "profile": manifest.get("profile"),
        "profile_kind": manifest.get("profile_kind"),
        "model": manifest.get("model"),
        "device": _device_text(environment.get("device") or {}),
        "python": environment.get("python"),
        "packages": _packages(environment.get("packages") or {}, entry),
        "created": manifest.get("created"),
        "key": manifest.get("key"),
        "version_set": manifest.get("version_set"),
        "directory": str(run.directory),
        "reused": getattr(run, "reused", None),
        "data": manifest.get("data") or {},
    }


def _packages(installed: dict, entry: dict) -> list[dict]:
    """Each installed package by name, marked where the baseline entry (if any) recorded another version."""
    recorded = entry.get("packages") or {}
    return [{"name": name, "version": version,
             "baseline": recorded.get(name) if entry else None,
             "changed": bool(entry) and recorded.get(name) != version}
            for name, version in sorted(installed.items())]


def _device_text(device: dict) -> str:
    # What selects the numbers (docs/devices.md), where the run recorded it.
    if device.get("kind") == "cpu" and "torch_capability" in device:
        return f"CPU: {env.describe_device(device)}"
    if device.get("kind") == "cuda" and device.get("compute_capability"):
        return f"{env.describe_device(device)} x{device.get('count', 1)}"
    if device.get("kind") == "cpu":
        return f"CPU ({device.get('name') or 'unknown'})"
    return f"{device.get('name') or 'GPU'} x{device.get('count', 1)}, CUDA {device.get('cuda') or '?'}"
