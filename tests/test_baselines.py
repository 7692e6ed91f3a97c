"""Baseline store: round trip, corrupt files, tolerance logic, entry choice, atomic update."""

import copy
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import baselines
from harness.baselines import BaselineError

ENV_A = {"python": "3.11.7", "packages": {"trl": "1.15.0", "transformers": "5.23.0"},
         "device": {"kind": "cpu", "name": "x86_64", "cuda": None, "count": 0}}
ENV_B = copy.deepcopy(ENV_A)
ENV_B["packages"]["trl"] = "1.16.0"


def manifest(env, bleu=10.0, created="2026-11-01T00:00:00Z"):
    return {
        "key": "tiny-abc", "created": created, "environment": env, "profile_kind": "full",
        "structure": {"footprint_loaded_bytes": 33_000_000, "footprint_adapted_bytes": 33_500_000,
                      "trainable_parameters": 100, "total_parameters": 1000},
        "training": {"global_step": 40, "packed_rows": 600, "loss_history": [{"step": 10, "loss": 8.0},
                                                                             {"step": 40, "loss": 3.0}],
                     "train_loss": 5.0, "peak_gpu_allocated_bytes": None},
        "adapter": {"safetensors_data_bytes": 400},
        "metrics": {
            "tuned": {"vs_translation_extra": {"bleu": bleu, "chrf": 30.0, "ter": 80.0},
                      "vs_translation": {"bleu": bleu - 1}, "stop_rate": 0.9, "non_empty_stop_rate": 0.9,
                      "mean_new_tokens": 20.0, "mean_words": 9.0},
            "base": {"vs_translation_extra": {"bleu": 0.1}},
        },
    }


def test_update_then_load_round_trips(tmp_path):
    path = tmp_path / "tiny.json"
    lines = baselines.update(path, "tiny", manifest(ENV_A), {"rendered": "<|user|>\nhi<|end|>\n"})
    assert lines == [f"new entry for cpu / version set {baselines.env.version_set_id(ENV_A)}"]
    stored = baselines.load(path, "tiny")
    (entry,) = stored["entries"]
    assert entry["metrics"]["bleu"] == {"value": 10.0, "tolerance": {"abs": 3.0}}
    assert entry["metrics"]["template_rendered"]["value"] == "<|user|>\nhi<|end|>\n"


def test_update_replaces_only_its_own_version_set(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", manifest(ENV_A, bleu=10.0), None)
    baselines.update(path, "tiny", manifest(ENV_B, bleu=12.0, created="2026-11-02T00:00:00Z"), None)
    lines = baselines.update(path, "tiny", manifest(ENV_B, bleu=14.0, created="2026-11-03T00:00:00Z"), None)
    assert "bleu: 12.0 → 14.0" in lines
    entries = baselines.load(path, "tiny")["entries"]
    assert sorted(e["metrics"]["bleu"]["value"] for e in entries) == [10.0, 14.0]


def test_interrupted_update_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", manifest(ENV_A), None)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        baselines.update(path, "tiny", manifest(ENV_B, bleu=99.0), None)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mangle, field", [
    (lambda d: d.pop("entries"), "entries: missing"),
    (lambda d: d.update(schema=7), "schema: version 7"),
    (lambda d: d.update(profile="smollm2"), "profile: is 'smollm2'"),
    (lambda d: d["thresholds"].update(min_bleu_gain="lots"), "thresholds.min_bleu_gain: expected a number"),
    (lambda d: d["entries"][0]["metrics"]["bleu"].pop("tolerance"), r"entries\[0\].metrics.bleu: expected an object"),
    (lambda d: d["entries"][0]["metrics"]["bleu"].update(value=[1]), r"entries\[0\].metrics.bleu.value"),
    (lambda d: d["entries"][0]["metrics"]["bleu"].update(tolerance={"abs": -1}), r"metrics.bleu.tolerance"),
    (lambda d: d["entries"][0].update(device=None), r"entries\[0\].device"),
])
def test_hand_mangled_file_names_the_field(tmp_path, mangle, field):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", manifest(ENV_A), None)
    raw = json.loads(path.read_text())
    mangle(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(BaselineError, match=field) as error:
        baselines.load(path, "tiny")
    assert str(path) in str(error.value)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text('{\n  "schema": 1,\n  "profile": "tiny",,\n}')
    with pytest.raises(BaselineError, match=r"tiny.json: not valid JSON \(line 3"):
        baselines.load(path, "tiny")


def test_missing_file_is_an_empty_store(tmp_path):
    assert baselines.load(tmp_path / "none.json", "tiny")["entries"] == []


def test_comparison_prefers_the_same_version_set_then_the_newest(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", manifest(ENV_A, bleu=10.0, created="2026-11-01T00:00:00Z"), None)
    exact = baselines.compare(path, "tiny", ENV_A)
    assert exact.value("bleu") == 10.0 and exact.changed == []
    other = baselines.compare(path, "tiny", ENV_B)
    assert other.value("bleu") == 10.0 and other.changed == ["trl 1.15.0 → 1.16.0"]
    assert "trl 1.15.0 → 1.16.0" in other.context()
    gpu = copy.deepcopy(ENV_A)
    gpu["device"] = {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "cuda": "13.0", "count": 1}
    assert baselines.compare(path, "tiny", gpu).entry is None


def test_check_reports_the_deviation(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", manifest(ENV_A, bleu=10.0), None)
    comparison = baselines.compare(path, "tiny", ENV_A)
    assert comparison.check("bleu", 12.9) is None
    deviation = comparison.check("bleu", 13.5)
    assert deviation and "13.5 vs baseline 10" in deviation.describe()


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
tolerance = st.floats(min_value=0, max_value=1e3, allow_nan=False)


@given(finite, tolerance)
def test_a_value_is_within_its_own_tolerance_band_edges(base, abs_tol):
    assert baselines.within(base + abs_tol * 0.999, base, {"abs": abs_tol})
    assert baselines.within(base - abs_tol * 0.999, base, {"abs": abs_tol})
    assert not baselines.within(base + abs_tol + 1.0, base, {"abs": abs_tol})


@given(finite, st.floats(min_value=0, max_value=2, allow_nan=False), finite)
def test_within_is_symmetric_for_absolute_tolerance(base, abs_tol, other):
    assert baselines.within(other, base, {"abs": abs_tol}) == baselines.within(base, other, {"abs": abs_tol})


@given(st.floats(min_value=1, max_value=1e6, allow_nan=False), st.floats(min_value=1e-9, max_value=1, allow_nan=False))
def test_relative_tolerance_scales_with_the_baseline(base, rel):
    assert baselines.within(base * (1 + rel * 0.99), base, {"rel": rel})
    assert not baselines.within(base * (1 + rel) * 1.01, base, {"rel": rel})
