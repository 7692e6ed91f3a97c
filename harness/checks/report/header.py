"""The page's header: what ran (profile, model, run id), where (device, Python) and with which libraries."""

from __future__ import annotations

from harness import env
from harness.recipe.record import to_json


def header_context(run, comparison=None) -> dict:
    record = run.record
    environment = record.environment
    entry = getattr(comparison, "entry", None) or {}
    return {
        "profile": record.profile,
        "profile_kind": record.profile_kind,
        "model": record.model,
        "device": env.device_header(environment.device),
        "python": environment.python,
        "packages": _packages(environment.packages, entry),
        "created": record.created,
        "key": record.key,
        "version_set": record.version_set,
        "directory": str(run.directory),
        "reused": getattr(run, "reused", None),
        "data": to_json(record.data),
    }


def _packages(installed: dict, entry: dict) -> list[dict]:
    """Each installed package by name, marked where the baseline entry (if any) recorded another version."""
    recorded = entry.get("packages") or {}
    return [{"name": name, "version": version,
             "baseline": recorded.get(name) if entry else None,
             "changed": bool(entry) and recorded.get(name) != version}
            for name, version in sorted(installed.items())]
