"""The "Memory and parameters" section: measured against the analytic prediction, and against the
recipe's published Phi-3-mini figures on the profiles that reproduce them."""

from __future__ import annotations

from typing import Any

from harness.checks.report.formatting import MB, is_number

# Bytes per element of the dtypes a safetensors header names (the adapter's saved size).
DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2}

# The published figures, as the reference table labels them.
REFERENCE_LABELS = {"footprint_loaded_mb": "footprint after 4-bit load (MB)",
                    "footprint_adapted_mb": "footprint after prepare + LoRA (MB)",
                    "trainable_parameters": "trainable parameters", "total_parameters": "total parameters"}


def memory_context(manifest: dict) -> dict:
    """Measured against the analytic prediction, and the recipe's Phi-3 figures where they apply."""
    structure = manifest.get("structure") or {}
    training = manifest.get("training") or {}
    adapter = manifest.get("adapter") or {}
    trainable, total = structure.get("trainable_parameters"), structure.get("total_parameters")
    rows = _measured_rows(structure, adapter)
    return {
        "rows": rows,
        "footprint_adapted": rows[1], "trainable": rows[2], "total": rows[3],
        "reference": phi3_reference(_profile_reference(manifest), structure),
        "trainable_share": trainable / total if is_number(trainable) and is_number(total) and total else None,
        "peak_gpu": training.get("peak_gpu_allocated_bytes"),
        "peak_rss": training.get("peak_rss_bytes"),
        "unquantized": sorted((structure.get("unquantized_modules") or {}).items()),
        "target_modules": structure.get("target_modules") or [],
        "adapter_files": adapter.get("files") or [],
        "adapter_bytes": adapter.get("safetensors_bytes"),
    }


def _measured_rows(structure: dict, adapter: dict) -> list[dict]:
    """The measured-vs-predicted table; memory_context picks rows 1 to 3 out by position."""
    predicted = structure.get("predicted") or {}
    dtypes = adapter.get("dtypes") or []
    adapter_params = predicted.get("trainable_parameters")
    return [
        _measured_row("footprint after 4-bit load", "bytes", structure.get("footprint_loaded_bytes"),
                      predicted.get("footprint_loaded_bytes")),
        _measured_row("footprint after prepare + LoRA", "bytes", structure.get("footprint_adapted_bytes"),
                      predicted.get("footprint_adapted_bytes")),
        _measured_row("trainable parameters", "count", structure.get("trainable_parameters"),
                      predicted.get("trainable_parameters")),
        _measured_row("total parameters", "count", structure.get("total_parameters"),
                      predicted.get("total_parameters")),
        _measured_row("4-bit linear modules", "count", len(structure.get("quantized_linear_modules") or []),
                      predicted.get("quantized_modules")),
        _measured_row("parameters in the saved adapter", "count", adapter.get("tensor_parameters"), adapter_params),
        _measured_row(f"saved adapter data ({', '.join(dtypes) or '?'})", "bytes",
                      adapter.get("safetensors_data_bytes"), _predicted_adapter_bytes(adapter_params, dtypes)),
    ]


def _predicted_adapter_bytes(parameters: Any, dtypes: list[str]) -> int | None:
    """The adapter's tensor data size, predictable only when it is saved in one known dtype."""
    if len(dtypes) == 1 and dtypes[0] in DTYPE_BYTES and is_number(parameters):
        return parameters * DTYPE_BYTES[dtypes[0]]
    return None


def _measured_row(label: str, unit: str, measured: Any, predicted: Any) -> dict:
    both = is_number(measured) and is_number(predicted)
    return {"label": label, "unit": unit, "measured": measured, "predicted": predicted,
            "match": measured == predicted if both else None, "delta": measured - predicted if both else None}


def _profile_reference(manifest: dict) -> dict:
    """The published figures the run's profile reproduces: recorded in the run, else its profile's (older runs)."""
    from harness.recipe.profiles import PROFILES  # on demand: the profiles import the model definitions

    if "reference" in manifest:
        return manifest["reference"]
    found = PROFILES.get(manifest.get("profile") or "")
    return dict(found.reference) if found else {}


def phi3_reference(reference: dict, structure: dict) -> dict:
    """The recipe's published Phi-3-mini figures; compared (MB to two decimals) on the profiles that reproduce them."""
    from harness.recipe.profiles import PROFILES

    applies = bool(reference)
    # A profile that reproduces no published figures still shows Phi-3-mini's, for reference only.
    published = reference or PROFILES["phi3"].reference
    measured = _reference_measurements(structure)
    rows = [{"label": REFERENCE_LABELS[key], "reference": reference, "measured": measured[key] if applies else None,
             "match": measured[key] == reference if applies and measured[key] is not None else None,
             "digits": 2 if key.endswith("_mb") else 0}
            for key, reference in published.items()]
    return {"applies": applies, "rows": rows,
            "share": published["trainable_parameters"] / published["total_parameters"]}


def _reference_measurements(structure: dict) -> dict:
    """This run's figures in the published ones' units: MB rounded to two decimals, as the recipe prints them."""
    return {
        "footprint_loaded_mb": _mb2(structure.get("footprint_loaded_bytes")),
        "footprint_adapted_mb": _mb2(structure.get("footprint_adapted_bytes")),
        "trainable_parameters": structure.get("trainable_parameters"),
        "total_parameters": structure.get("total_parameters"),
    }


def _mb2(value: Any) -> float | None:
    return round(value / MB, 2) if is_number(value) else None
