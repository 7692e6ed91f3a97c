"""Baseline store: round trip, corrupt and legacy files, the direction and band rules, entry
choice, refusal, spread recording, committed files, and the one decision shared with the report."""

import copy
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.checks import baselines
from harness.checks.baselines import EXACT, HIGHER, LOWER, POLICY, TWO_SIDED, BaselineError, Policy
from harness.recipe.record import load

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "run_tiny"
COMMITTED = sorted((ROOT / "baselines").glob("*.json"))

ENV_A = {"python": "3.11.7", "packages": {"trl": "1.15.0", "transformers": "5.23.0"},
         "device": {"kind": "cpu", "name": "x86_64", "cuda": None, "count": 0}}
ENV_B = copy.deepcopy(ENV_A)
ENV_B["packages"]["trl"] = "1.16.0"


def manifest(env, bleu=10.0, created="2026-11-01T00:00:00Z", seed=0, key="tiny-abc") -> dict:
    """A run.json: the fixture run's, with the figures these tests set."""
    signatures = {"bleu": "nrefs:1|tok:13a|version:2.6.0", "chrf": "nrefs:1|version:2.6.0",
                  "ter": "nrefs:1|version:2.6.0"}
    return _merged(fixture_run()[0], {
        "key": key, "created": created, "profile": "tiny", "profile_kind": "full",
        "model": "tiny-phi3",
        "config": {"training": {"learning_rate": 0.003, "seed": seed}, "lora": {"r": 8}},
        "data": {"source": "bundled", "train_fingerprint": "t1", "eval_fingerprint": "e1", "train_rows": 786,
                 "eval_rows": 94},
        "structure": {"footprint_loaded_bytes": 33_000_000, "footprint_adapted_bytes": 33_500_000,
                      "trainable_parameters": 100, "total_parameters": 1000},
        "training": {"global_step": 40, "packed_rows": 600, "loss_history": [{"step": 10, "loss": 8.0},
                                                                             {"step": 40, "loss": 3.0}],
                     "train_loss": 5.0, "peak_gpu_allocated_bytes": None},
        "adapter": {"safetensors_data_bytes": 400, "dtypes": ["BF16"]},
        "tokens": {"as_read": {"eos": "<|endoftext|>", "bos": "<s>", "unk": "<unk>", "pad": "<|endoftext|>",
                               "ids": {}, "read_by": {}}},
        "metrics": {
            "tuned": {"vs_translation_extra": {"bleu": bleu, "chrf": 30.0, "ter": 80.0, "signatures": signatures},
                      "vs_translation": {"bleu": bleu - 1}, "stop_rate": 0.9, "non_empty_stop_rate": 0.9,
                      "mean_new_tokens": 20.0, "mean_words": 9.0},
            "base": {"vs_translation_extra": {"bleu": 0.1}, "stop_rate": 0.2},
        },
    }) | {"environment": env}


def _merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` written over it, section by section."""
    merged = dict(base)
    for key, value in changes.items():
        both_sections = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_sections else value
    return merged


def fixture_run() -> tuple[dict, dict]:
    return (json.loads((FIXTURE / "run.json").read_text()), json.loads((FIXTURE / "template.json").read_text()))


# ------------------------------------------------------------------ store
def test_update_then_load_round_trips(tmp_path):
    path = tmp_path / "tiny.json"
    lines = baselines.update(path, "tiny", load(manifest(ENV_A)), {"rendered": "<|user|>\nhi<|end|>\n"})
    assert lines == [f"new entry for cpu / version set {baselines.env.version_set_id(ENV_A)}"]
    stored = baselines.load(path, "tiny")
    assert stored["schema"] == baselines.SCHEMA == 2
    (entry,) = stored["entries"]
    assert entry["metrics"]["bleu"]["direction"] == HIGHER
    assert entry["metrics"]["bleu"]["band"] == {"low": pytest.approx(9.0), "high": None}
    assert entry["metrics"]["template_rendered"] == {"value": "<|user|>\nhi<|end|>\n", "direction": EXACT}
    assert entry["inputs"]["global_step"] == 40 and entry["inputs"]["data"]["train_fingerprint"] == "t1"


def test_every_metric_a_run_has_is_recorded_with_a_policy(tmp_path):
    entry = baselines.entry_from_run(load(manifest(ENV_A)), {"rendered": "x"})
    assert set(entry["metrics"]) == set(POLICY) - {"peak_gpu_allocated_mb"}  # a CPU run measures no GPU
    run, template = fixture_run()
    real = baselines.entry_from_run(load(run), template)
    assert set(real["metrics"]) <= set(POLICY)
    for name in ("loss_first", "base_bleu", "base_stop_rate", "ter", "packed_rows", "global_step",
                 "adapter_data_bytes", "bleu_signature", "chrf_signature", "ter_signature", "template_rendered"):
        assert name in real["metrics"], name


def test_update_replaces_only_its_own_version_set(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(ENV_A, bleu=10.0)), None)
    baselines.update(path, "tiny", load(manifest(ENV_B, bleu=12.0, created="2026-11-02T00:00:00Z")), None)
    lines = baselines.update(path, "tiny", load(manifest(ENV_B, bleu=14.0, created="2026-11-03T00:00:00Z")), None)
    assert "bleu: 12.0 → 14.0" in lines
    entries = baselines.load(path, "tiny")["entries"]
    assert sorted(e["metrics"]["bleu"]["value"] for e in entries) == [10.0, 14.0]


def test_interrupted_update_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(ENV_A)), None)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        baselines.update(path, "tiny", load(manifest(ENV_B, bleu=99.0)), None)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mangle, field", [
    (lambda d: d.pop("entries"), "entries: missing"),
    (lambda d: d.update(schema=7), "schema: version 7"),
    (lambda d: d.update(profile="smollm2"), "profile: is 'smollm2'"),
    (lambda d: d.update(thresholds={"min_bleu_gain": 1.0}), r"thresholds: the checks' thresholds are the profile's now: "
                                                            r"move them to the profile file's \[thresholds\] table \(min_bleu_gain = 1.0\)"),
    (lambda d: d["entries"][0]["metrics"]["bleu"].pop("direction"), r"entries\[0\].metrics.bleu: expected an object"),
    (lambda d: d["entries"][0]["metrics"]["bleu"].update(direction="up"), r"metrics.bleu.direction: expected one"),
    (lambda d: d["entries"][0]["metrics"]["bleu"].update(value=[1]), r"entries\[0\].metrics.bleu.value"),
    (lambda d: d["entries"][0]["metrics"]["bleu"].update(band={"low": None, "high": None}),
     r"metrics.bleu.band.low: a higher metric needs a number"),
    (lambda d: d["entries"][0]["metrics"]["bleu"].update(band={"low": 11.0, "high": None}),
     r"metrics.bleu.band: >= 11 does not contain the value 10.0"),
    (lambda d: d["entries"][0]["metrics"]["ter"]["band"].update(low=1.0), r"metrics.ter.band.low: a lower metric has no"),
    (lambda d: d["entries"][0]["metrics"].update(blue={"value": 1, "direction": "exact"}), r"metrics.blue: not a metric"),
    (lambda d: d["entries"][0]["inputs"].pop("config_digest"), r"entries\[0\].inputs.config_digest"),
    (lambda d: d["entries"][0].update(device=None), r"entries\[0\].device"),
])
def test_hand_mangled_file_names_the_field(tmp_path, mangle, field):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(ENV_A)), None)
    raw = json.loads(path.read_text())
    mangle(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(BaselineError, match=field) as error:
        baselines.load(path, "tiny")
    assert str(path) in str(error.value)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text('{\n  "schema": 2,\n  "profile": "tiny",,\n}')
    with pytest.raises(BaselineError, match=r"tiny.json: not valid JSON \(line 3"):
        baselines.load(path, "tiny")


def test_missing_file_is_an_empty_store(tmp_path):
    assert baselines.load(tmp_path / "none.json", "tiny")["entries"] == []


def legacy_file(path: Path) -> Path:
    """A schema-1 file as the harness wrote it before: absolute tolerances, no inputs."""
    path.write_text(json.dumps({"schema": 1, "profile": "tiny", "entries": [
        {"version_set": baselines.env.version_set_id(ENV_A), "device": "cpu", "recorded": "2026-11-01T00:00:00Z",
         "packages": ENV_A["packages"], "metrics": {
             "bleu": {"value": 10.0, "tolerance": {"abs": 3.0}},
             "adapter_dtype": {"value": "BF16", "tolerance": {"abs": 0.0}},
             "peak_gpu_allocated_mb": {"value": 450.3, "tolerance": {"rel": 0.1}}}}]}))
    return path


def test_a_legacy_file_loads_as_policy_bands_marked_legacy(tmp_path):
    stored = baselines.load(legacy_file(tmp_path / "tiny.json"), "tiny")
    (entry,) = stored["entries"]
    assert entry["legacy"] is True and "inputs" not in entry
    # the policy's 10 % floor, not the old +-3 that accepted any BLEU from 7 to 13
    assert entry["metrics"]["bleu"]["band"] == {"low": pytest.approx(9.0), "high": None}
    assert entry["metrics"]["bleu"]["spread"] is None and entry["metrics"]["bleu"]["legacy"] is True
    assert entry["metrics"]["peak_gpu_allocated_mb"]["band"] == {"low": None, "high": pytest.approx(495.33)}
    comparison = baselines.compare(tmp_path / "tiny.json", "tiny", ENV_A)
    assert comparison.refusal(load(manifest(ENV_A))) is None  # no inputs recorded: nothing to refuse on
    assert "legacy entry" in comparison.context()


def test_updating_a_legacy_file_keeps_its_other_entries_readable(tmp_path):
    path = legacy_file(tmp_path / "tiny.json")
    baselines.update(path, "tiny", load(manifest(ENV_B)), None)
    entries = baselines.load(path, "tiny")["entries"]
    assert json.loads(path.read_text())["schema"] == 2
    assert [bool(e.get("legacy")) for e in entries] == [True, False]


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_baseline_files_load(path):
    baselines.load(path, path.stem)


# ------------------------------------------------------------------ the direction and band rules
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
fraction = st.floats(min_value=0.0, max_value=0.9, allow_nan=False)
spreads = st.one_of(st.none(), st.floats(min_value=0, max_value=1e3, allow_nan=False))


def stored(direction, value, spread=None, rel_floor=0.1, k=3.0):
    policy = Policy(direction, rel_floor=rel_floor, k=k)
    band = baselines.band_for(policy, value, spread) if direction != EXACT else None
    return {"value": value, "direction": direction, "band": band}


@given(finite, spreads, fraction, st.floats(min_value=0, max_value=10, allow_nan=False))
def test_a_band_holds_its_value_and_is_at_least_its_floor_and_k_spread(value, spread, rel_floor, k):
    band = baselines.band_for(Policy(TWO_SIDED, rel_floor=rel_floor, k=k), value, spread)
    half = (band["high"] - band["low"]) / 2
    assert band["low"] <= value <= band["high"]
    rounding = 1e-9 * max(1.0, abs(value))  # value +- half is computed in floats
    assert half >= rel_floor * abs(value) - rounding and half >= k * (spread or 0) - rounding


@given(positive, fraction, st.floats(min_value=0, max_value=10, allow_nan=False))
def test_higher_is_better_fails_only_below_the_band(value, rel_floor, gain):
    metric = stored(HIGHER, value, rel_floor=rel_floor)
    assert metric["band"]["high"] is None
    assert baselines.judge("bleu", value * (1 + gain), metric).ok  # any improvement passes
    assert baselines.judge("bleu", metric["band"]["low"], metric).ok  # the edge is inside
    below = metric["band"]["low"] - max(1e-6, 1e-6 * value)
    assert baselines.judge("bleu", below, metric).status == "changed"


@given(positive, fraction, st.floats(min_value=0, max_value=1, allow_nan=False))
def test_lower_is_better_fails_only_above_the_band(value, rel_floor, drop):
    metric = stored(LOWER, value, rel_floor=rel_floor)
    assert metric["band"]["low"] is None
    assert baselines.judge("ter", value * (1 - drop), metric).ok
    above = metric["band"]["high"] + max(1e-6, 1e-6 * value)
    assert baselines.judge("ter", above, metric).status == "changed"


@given(finite, fraction, st.floats(min_value=1e-6, max_value=1e3, allow_nan=False), st.sampled_from([-1, 1]))
def test_two_sided_fails_both_ways(value, rel_floor, beyond, sign):
    metric = stored(TWO_SIDED, value, rel_floor=rel_floor)
    assert baselines.judge("loss_first", value, metric).ok
    edge = metric["band"]["high"] if sign > 0 else metric["band"]["low"]
    outside = edge + sign * max(beyond, 1e-6 * abs(value))
    assert baselines.judge("loss_first", outside, metric).status == "changed"


@given(st.one_of(st.text(max_size=30), st.integers(min_value=-10**12, max_value=10**12)),
       st.one_of(st.text(max_size=30), st.integers(min_value=-10**12, max_value=10**12)))
def test_exact_passes_only_when_equal(recorded, current):
    metric = stored(EXACT, recorded)
    assert baselines.judge("packed_rows", recorded, metric).ok
    assert baselines.judge("packed_rows", current, metric).ok == (current == recorded)


def test_a_metric_the_entry_lacks_or_the_run_lacks_is_not_judged():
    assert baselines.judge("bleu", 1.0, None).status == "not-recorded"
    missing = baselines.judge("tokens_as_read", None, stored(EXACT, "{}"), "no tokens.as_read")
    assert missing.status == "not-measured" and missing.reason == "no tokens.as_read"


def test_a_bleu_drop_of_half_fails_on_tiny():
    run, template = fixture_run()
    entry = baselines.entry_from_run(load(run), template)
    halved = copy.deepcopy(run)
    halved["metrics"]["tuned"]["vs_translation_extra"]["bleu"] /= 2
    values = baselines.run_metrics(load(halved), template)
    verdict = baselines.judge("bleu", values["bleu"], entry["metrics"]["bleu"])
    assert verdict.status == "changed", verdict
    assert "bleu 1.8293 -> 0.91465" == verdict.short()
    # and against the committed tiny entry, whatever its recorded spread, as a run on its device
    committed = baselines.load(ROOT / "baselines" / "tiny.json", "tiny")["entries"][-1]
    for manifest in (run, halved):
        manifest["environment"] = {"python": committed["python"], "packages": committed["packages"],
                                   "device": committed["device_facts"]}
    comparison = baselines.compare(ROOT / "baselines" / "tiny.json", "tiny", run["environment"])
    assert comparison.other_device is None
    assert comparison.judge("bleu", load(halved), template).status == "changed"
    assert comparison.judge("bleu", load(run), template).ok


# ------------------------------------------------------------------ entries, nearest, refusal
def test_comparison_prefers_the_same_version_set_then_the_nearest(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(ENV_A, bleu=10.0, created="2026-11-01T00:00:00Z")), None)
    far = copy.deepcopy(ENV_A)
    far["packages"].update(trl="0.9.0", transformers="4.0.0")
    baselines.update(path, "tiny", load(manifest(far, bleu=5.0, created="2026-11-05T00:00:00Z")), None)
    exact = baselines.compare(path, "tiny", ENV_A)
    assert exact.value("bleu") == 10.0 and exact.changed == []
    other = baselines.compare(path, "tiny", ENV_B)  # one package from ENV_A, two from `far` (newer)
    assert other.value("bleu") == 10.0 and other.changed == ["trl 1.15.0 → 1.16.0"]
    assert "nearest entry" in other.context() and "trl 1.15.0 → 1.16.0" in other.context()
    gpu = copy.deepcopy(ENV_A)
    gpu["device"] = {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "cuda": "13.0", "count": 1}
    assert baselines.compare(path, "tiny", gpu).entry is None


@pytest.mark.parametrize("change, expected", [
    (lambda m: m["config"]["training"].update(learning_rate=0.001), "config differs: training.learning_rate 0.003 -> 0.001"),
    (lambda m: m["data"].update(eval_fingerprint="e2"), "data split differs: eval_fingerprint e1 -> e2"),
    (lambda m: m["training"].update(global_step=80), "step count differs: 40 -> 80"),
    (lambda m: m.update(model="smollm2-135m"), "model differs: tiny/tiny-phi3 -> tiny/smollm2-135m"),
])
def test_a_run_whose_inputs_differ_is_refused_by_name(tmp_path, change, expected):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(ENV_A)), None)
    comparison = baselines.compare(path, "tiny", ENV_A)
    assert comparison.refusal(load(manifest(ENV_A))) is None
    run = manifest(ENV_A)
    change(run)
    assert expected in comparison.refusal(load(run))


def test_a_step_count_refusal_names_the_packing_the_run_recorded(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(ENV_A)), None)
    run = manifest(ENV_A)
    run["training"]["global_step"] = 44
    run["compat"] = [{"library": "trl 0.12.1", "setting": "packing", "action": "appends EOS after every example",
                      "description": "trl 0.12.1: appends EOS after "
                      "every example: 786 tokens more to pack, in the step count's prediction"},
                     {"library": "trl 0.12.1", "setting": "max_length", "action": "passed as max_seq_length",
                      "description": "trl 0.12.1: max_length passed "
                      "as max_seq_length (this trl's name)"}]
    refusal = baselines.compare(path, "tiny", ENV_A).refusal(load(run))
    assert refusal == ("step count differs: 40 -> 44 (same config and data: this run's packing, as recorded: trl 0.12.1: "
                       "appends EOS after every example: 786 tokens more to pack, in the step count's prediction)")


def test_the_seed_is_not_an_input(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(ENV_A)), None)
    assert baselines.compare(path, "tiny", ENV_A).refusal(load(manifest(ENV_A, seed=7))) is None


def test_a_retired_config_field_neither_refuses_nor_is_recorded(tmp_path):
    # generation.do_sample was recorded (false) but never passed; entries and runs made with it
    # compare as ones made without it, and a new entry does not record it.
    path = tmp_path / "tiny.json"
    old_run = manifest(ENV_A)
    old_run["config"]["generation"] = {"max_new_tokens": 64, "do_sample": False}
    baselines.update(path, "tiny", load(old_run), None)
    new_run = copy.deepcopy(old_run)
    del new_run["config"]["generation"]["do_sample"]
    assert "do_sample" not in json.dumps(json.loads(path.read_text())["entries"][0]["inputs"])
    # An entry recorded before the field was retired: its config and digest have it.
    raw = json.loads(path.read_text())
    inputs = raw["entries"][0]["inputs"]
    inputs["config"]["generation"]["do_sample"] = False
    inputs["config_digest"] = baselines._digest(inputs["config"])
    path.write_text(json.dumps(raw))
    comparison = baselines.compare(path, "tiny", ENV_A)
    assert comparison.refusal(load(new_run)) is None and comparison.refusal(load(old_run)) is None
    new_run["config"]["generation"]["max_new_tokens"] = 8
    assert comparison.refusal(load(new_run)) == "config differs: generation.max_new_tokens 64 -> 8"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_a_run_without_the_retired_field_meets_the_committed_entries_as_one_with_it(path):
    recorded, _ = fixture_run()
    assert recorded["config"]["generation"]["do_sample"] is False  # recorded before it was retired
    current = copy.deepcopy(recorded)
    del current["config"]["generation"]["do_sample"]
    entries = baselines.load(path, path.stem)["entries"]
    for entry in entries:
        for scope in (baselines.RUN, baselines.MODEL):
            assert baselines.refusal(entry, load(current), scope) == baselines.refusal(entry, load(recorded), scope)
    # and the retired field is never what an entry refuses on (the fixture's inputs are an older
    # model's, so tiny.json's entry refuses it on the model: the refusal must not name the field)
    assert not any("do_sample" in (baselines.refusal(entry, load(current)) or "") for entry in entries)


# ------------------------------------------------------------------ spread over seeds
def test_recording_over_seeds_stores_mean_spread_and_a_band_of_k_spread():
    runs = [(load(manifest(ENV_A, bleu=b, seed=s, key=f"tiny-{s}")), None) for s, b in enumerate((9.0, 10.0, 11.0))]
    entry = baselines.entry_from_runs(runs)
    bleu = entry["metrics"]["bleu"]
    assert bleu["value"] == pytest.approx(10.0) and bleu["spread"] == pytest.approx(1.0)
    assert bleu["samples"] == [9.0, 10.0, 11.0] and bleu["band"]["low"] == pytest.approx(10.0 - 3 * 1.0)
    chrf = entry["metrics"]["chrf"]  # equal across seeds: the relative floor alone
    assert chrf["spread"] == 0.0 and chrf["band"]["low"] == pytest.approx(30.0 * (1 - POLICY["chrf"].rel_floor))
    assert [r["seed"] for r in entry["runs"]] == [0, 1, 2]


def test_an_exact_metric_that_depends_on_the_seed_is_not_recorded():
    other = manifest(ENV_A, seed=1, key="tiny-1")
    other["training"]["packed_rows"] = 601
    with pytest.raises(BaselineError, match="packed_rows differs between the runs"):
        baselines.entry_from_runs([(load(manifest(ENV_A)), None), (load(other), None)])


def test_runs_of_another_config_cannot_share_an_entry():
    other = manifest(ENV_A, seed=1, key="tiny-1")
    other["config"]["lora"]["r"] = 16
    with pytest.raises(BaselineError, match="lora.r 8 -> 16"):
        baselines.entry_from_runs([(load(manifest(ENV_A)), None), (load(other), None)])


def test_a_band_that_reaches_zero_is_refused_at_recording(tmp_path):
    # TER is lower-is-better, so use a rate: a model that never stops has nothing to drop below
    never_stops = manifest(ENV_A)
    never_stops["metrics"]["tuned"].update(stop_rate=0.0, non_empty_stop_rate=0.0)
    with pytest.raises(BaselineError, match="the band of non_empty_stop_rate, stop_rate reaches zero"):
        baselines.update(tmp_path / "tiny.json", "tiny", load(never_stops), None)
    assert not (tmp_path / "tiny.json").exists()


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_no_committed_higher_is_better_band_reaches_zero(path):
    for entry in baselines.load(path, path.stem)["entries"]:
        assert baselines.zero_spanning(entry) == [], f"{path.name} {entry['version_set']}/{entry['device']}"


# ------------------------------------------------------------------ the report decides with the same function
def test_the_report_rows_are_the_decisions_of_judge(tmp_path):
    from harness.checks.report.baseline import _ROW_STATUS, baseline_context

    run, template = fixture_run()
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(run), template)
    changed = copy.deepcopy(run)
    changed["metrics"]["tuned"]["vs_translation_extra"]["bleu"] /= 2
    changed["adapter"]["dtypes"] = ["F32"]
    changed["structure"]["footprint_adapted_bytes"] += 1
    comparison = baselines.compare(path, "tiny", run["environment"])
    rows = {row["name"]: row["status"] for row in baseline_context(load(changed), template, comparison)["rows"]}
    decided = {v.name: _ROW_STATUS[v.status] for v in comparison.judge_all(load(changed), template)}
    assert rows == decided
    assert {name for name, status in rows.items() if status == "outside"} == {
        "bleu", "adapter_dtype", "footprint_adapted_mb"}


def test_a_training_setting_refuses_the_learned_metrics_not_the_models_own(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(ENV_A)), None)
    comparison = baselines.compare(path, "tiny", ENV_A)
    faster = manifest(ENV_A)
    faster["config"]["training"]["learning_rate"] = 0.001
    assert comparison.refusal(load(faster), baselines.MODEL) is None
    assert "training.learning_rate" in comparison.refusal(load(faster), baselines.RUN)
    wider = manifest(ENV_A)
    wider["config"]["lora"]["r"] = 16
    assert comparison.refusal(load(wider), baselines.MODEL) == "config differs: lora.r 8 -> 16"
    assert {baselines.scope_of(n) for n in ("template_rendered", "footprint_adapted_mb", "bleu_signature")} == {"model"}
    assert {baselines.scope_of(n) for n in ("bleu", "global_step", "adapter_dtype", "loss_first")} == {"run"}


def test_the_cli_records_several_seeds_as_one_entry(tmp_path, capsys):
    import shutil

    from harness import cli

    directories = []
    for seed, bleu in ((0, 1.8), (1, 2.0), (2, 2.2)):
        directory = Path(shutil.copytree(FIXTURE, tmp_path / f"run{seed}"))
        run = json.loads((directory / "run.json").read_text())
        run["config"]["training"]["seed"], run["key"] = seed, f"tiny-seed{seed}"
        run["metrics"]["tuned"]["vs_translation_extra"]["bleu"] = bleu
        (directory / "run.json").write_text(json.dumps(run))
        directories.append(str(directory))
    assert cli.main(["baselines", "update", *directories, "--baselines-dir", str(tmp_path)]) == 0
    (entry,) = baselines.load(tmp_path / "tiny.json", "tiny")["entries"]
    assert entry["metrics"]["bleu"]["samples"] == [1.8, 2.0, 2.2]
    assert entry["metrics"]["bleu"]["spread"] == pytest.approx(0.2)
    assert [r["seed"] for r in entry["runs"]] == [0, 1, 2]
    assert "updated" in capsys.readouterr().out


@given(positive, st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_a_capped_band_never_reaches_zero_and_always_fails_a_halving(value, spread):
    policy = POLICY["bleu"]
    band = baselines.band_for(policy, value, spread)
    assert band["low"] >= value * (1 - policy.rel_cap) * (1 - 1e-9) > 0
    assert baselines.judge("bleu", value / 2, {"value": value, "direction": HIGHER, "band": band}).status == "changed"
    assert baselines.capped(policy, value, spread) == (policy.k * spread > policy.rel_cap * value)


def test_seeds_that_disagree_more_than_the_cap_are_marked_and_printed(tmp_path):
    runs = [(load(manifest(ENV_A, bleu=b, seed=s, key=f"tiny-{s}")), None) for s, b in enumerate((1.0, 10.0, 19.0))]
    lines = baselines.update(tmp_path / "tiny.json", "tiny", runs[0][0], None, spread_runs=runs[1:])
    (entry,) = baselines.load(tmp_path / "tiny.json", "tiny")["entries"]
    assert entry["metrics"]["bleu"]["capped"] is True and entry["metrics"]["chrf"]["capped"] is False
    assert entry["metrics"]["bleu"]["band"]["low"] == pytest.approx(10.0 * 0.6)
    assert any(line.startswith("bleu: k x spread 27 is wider than the cap (40% of 10)") for line in lines)


# ------------------------------------------------------------------ process count (torchrun / accelerate)
def _over(environment: dict, processes: int) -> dict:
    return dict(copy.deepcopy(environment), processes=processes)


def test_a_run_over_two_processes_is_not_compared_with_the_one_process_entry(tmp_path):
    # Two processes halve the optimizer steps: a 1-process entry is another run, not a looser band.
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(_over(ENV_A, 1))), None)
    assert baselines.compare(path, "tiny", ENV_A).entry is not None  # recorded before `processes`: one
    two = baselines.compare(path, "tiny", _over(ENV_A, 2))
    assert two.entry is None
    assert two.reason == "no baseline entry for cpu, 2 processes (entries for: cpu)"


def test_entries_for_one_and_two_processes_live_side_by_side(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(_over(ENV_A, 1), bleu=10.0)), None)
    two_process_run = manifest(_over(ENV_A, 2), bleu=9.0)
    two_process_run["training"]["global_step"] = 20
    baselines.update(path, "tiny", load(two_process_run), None)
    entries = baselines.load(path, "tiny")["entries"]
    assert sorted(e["device"] for e in entries) == ["cpu", "cpu, 2 processes"]
    assert baselines.compare(path, "tiny", _over(ENV_A, 1)).value("bleu") == 10.0
    two = baselines.compare(path, "tiny", _over(ENV_A, 2))
    assert two.value("bleu") == 9.0 and two.entry["inputs"]["global_step"] == 20


def _read_by(run: dict, transformers: str, eos: str = "<|endoftext|>") -> dict:
    run["tokens"]["as_read"].update(eos=eos, read_by={"transformers": transformers})
    return run


def test_the_same_tokens_read_by_another_release_are_not_a_change(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(_read_by(manifest(ENV_A), "5.23.0")), None)
    comparison = baselines.compare(path, "tiny", ENV_A)
    assert comparison.judge("tokens_as_read", load(_read_by(manifest(ENV_A), "4.56.1")), None).ok
    other = comparison.judge("tokens_as_read", load(_read_by(manifest(ENV_A), "4.56.1", eos="</s>")), None)
    assert other.status == "changed" and "</s>" in str(other.current)


def test_an_entry_recorded_with_the_readers_in_the_value_compares_on_the_tokens(tmp_path):
    path = tmp_path / "tiny.json"
    baselines.update(path, "tiny", load(manifest(ENV_A)), None)
    stored = json.loads(path.read_text())  # as entries were written before 2026-12-02
    stored["entries"][0]["metrics"]["tokens_as_read"]["value"] = json.dumps(
        _read_by(manifest(ENV_A), "5.23.0")["tokens"]["as_read"], sort_keys=True)
    path.write_text(json.dumps(stored))
    comparison = baselines.compare(path, "tiny", ENV_A)
    assert comparison.judge("tokens_as_read", load(_read_by(manifest(ENV_A), "4.56.1")), None).ok
