"""The "Memory and parameters" section: measured against the analytic prediction, and against the
recipe's published Phi-3-mini figures on the profiles that reproduce them."""

from __future__ import annotations

from typing import Any

from harness.checks.report.formatting import MB, is_number
from harness.recipe.record import Adapter, Structure

# Bytes per element of the dtypes a safetensors header names (the adapter's saved size).
DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2}

# The published figures, as the reference table labels them.
REFERENCE_LABELS = {"footprint_loaded_mb": "footprint after 4-bit load (MB)",
                    "footprint_adapted_mb": "footprint after prepare + LoRA (MB)",
                    "trainable_parameters": "trainable parameters", "total_parameters": "total parameters"}


def memory_context(record) -> dict:
    """Measured against the analytic prediction, and the recipe's Phi-3 figures where they apply."""
    structure = record.structure
    training = record.training if record.trained else None  # peak memory is measured while training
    adapter = record.adapter if record.trained else None
    trainable, total = structure.trainable_parameters, structure.total_parameters
    rows = _measured_rows(structure, adapter)
    return {
        "rows": rows,
        "footprint_adapted": rows[1], "trainable": rows[2], "total": rows[3],
        "reference": phi3_reference(record.reference, structure),
        "trainable_share": trainable / total if total else None,
        "peak_gpu": training and training.peak_gpu_allocated_bytes,
        "peak_rss": training and training.peak_rss_bytes,
        "unquantized": sorted(structure.unquantized_modules.items()),
        "target_modules": structure.target_modules,
        "adapter_files": adapter.files if adapter else [],
        "adapter_bytes": adapter and adapter.safetensors_bytes,
    }


def _measured_rows(structure: Structure, adapter: Adapter | None) -> list[dict]:
    """The measured-vs-predicted table; memory_context picks rows 1 to 3 out by position."""
    predicted = structure.predicted
    dtypes = (adapter and adapter.dtypes) or []
    adapter_params = predicted.trainable_parameters
    return [
        _measured_row("footprint after 4-bit load", "bytes", structure.footprint_loaded_bytes,
                      predicted.footprint_loaded_bytes),
        _measured_row("footprint after prepare + LoRA", "bytes", structure.footprint_adapted_bytes,
                      predicted.footprint_adapted_bytes),
        _measured_row("trainable parameters", "count", structure.trainable_parameters, predicted.trainable_parameters),
        _measured_row("total parameters", "count", structure.total_parameters, predicted.total_parameters),
        _measured_row("4-bit linear modules", "count", len(structure.quantized_linear_modules),
                      predicted.quantized_modules),
        _measured_row("parameters in the saved adapter", "count", adapter and adapter.tensor_parameters,
                      adapter_params),
        _measured_row(f"saved adapter data ({', '.join(dtypes) or '?'})", "bytes",
                      adapter and adapter.safetensors_data_bytes, _predicted_adapter_bytes(adapter_params, dtypes)),
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


def phi3_reference(reference: dict, structure: Structure) -> dict:
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


def _reference_measurements(structure: Structure) -> dict:
    """This run's figures in the published ones' units: MB rounded to two decimals, as the recipe prints them."""
    return {
        "footprint_loaded_mb": _mb2(structure.footprint_loaded_bytes),
        "footprint_adapted_mb": _mb2(structure.footprint_adapted_bytes),
        "trainable_parameters": structure.trainable_parameters,
        "total_parameters": structure.total_parameters,
    }


def _mb2(value: Any) -> float | None:
    return round(value / MB, 2) if is_number(value) else None
