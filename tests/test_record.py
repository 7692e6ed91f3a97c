"""The run record: run.json read as typed sections, a schema-1 run migrated, a wrong field named."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from harness.recipe import record
from harness.recipe.profiles import PROFILES
from harness.recipe.record import PreparedRun, RecordError, TrainedRun, load

FIXTURE = Path(__file__).parent / "fixtures" / "run_tiny" / "run.json"


def schema_1() -> dict:
    """The committed fixture: a run.json written before the record had a version (and before
    several of its fields existed)."""
    raw = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert "schema_version" not in raw and "stage" not in raw and "thresholds" not in raw
    return raw


def test_a_schema_1_run_reads_as_its_readers_read_it():
    raw = schema_1()
    untouched = copy.deepcopy(raw)
    run = load(raw)
    assert raw == untouched  # the migration works on a copy
    assert isinstance(run, TrainedRun) and run.schema_version == record.SCHEMA_VERSION
    assert run.compat == [] and run.library_warnings == [] and run.tokens.corrections == []
    # Recorded tokens only: one group of packed rows, every row kept.
    training = run.training
    assert training.packing_added_tokens == 0
    assert training.packed_rows_predicted == -(-training.templated_tokens // run.recipe_config.training.max_length)
    # What the run's profile set, from its built-in profile (where older readers took it).
    assert run.thresholds == dict(PROFILES["tiny"].thresholds) and run.skips == dict(PROFILES["tiny"].skips)
    # What it did not record stays unrecorded.
    assert run.saved is None and run.adapter.reload is None and run.tokens.as_read is None


def test_a_current_record_writes_the_json_it_was_read_from():
    written = load(schema_1()).to_json()
    assert written["schema_version"] == record.SCHEMA_VERSION
    assert load(written).to_json() == written
    assert load(written) == load(schema_1())
    # The corpus scores keep their `vs_<column>` keys in the JSON, and read under `versus`.
    assert set(written["metrics"]["tuned"]) >= {"vs_translation", "vs_translation_extra"}
    assert load(written).metrics.tuned.versus["vs_translation_extra"].bleu == 1.8293


def test_the_prepared_stage_is_its_own_record():
    raw = load(schema_1()).to_json()
    raw["stage"] = "prepared"
    with pytest.raises(RecordError, match="unknown field"):
        load(raw)  # a prepared stage has no adapter, metrics or training results
    for key in ("adapter", "saved", "metrics"):
        del raw[key]
    prepared_fields = {field.name for field in dataclasses.fields(record.PreparedTraining)}
    raw["training"] = {key: value for key, value in raw["training"].items() if key in prepared_fields}
    prepared = load(raw)
    assert isinstance(prepared, PreparedRun) and not isinstance(prepared, TrainedRun) and not prepared.trained
    assert prepared.measure(None)[0]["trainable_parameters"] == prepared.structure.trainable_parameters


@pytest.mark.parametrize("change, named", [
    (lambda raw: raw["structure"].update(trainable_parameters="245760"), "run.json.structure.trainable_parameters"),
    (lambda raw: raw["training"].update(loss_history=[{"step": 10}]), "run.json.training.loss_history[0].loss"),
    (lambda raw: raw["tokens"].pop("eos_id"), "run.json.tokens.eos_id: missing"),
    (lambda raw: raw["data"].update(rows=3), "run.json.data: unknown field(s) rows"),
    (lambda raw: raw.update(stage="trainedd"), "run.json.stage: 'trainedd' is not 'prepared' or 'trained'"),
])
def test_a_field_of_the_wrong_shape_is_named(change, named):
    raw = load(schema_1()).to_json()
    change(raw)
    with pytest.raises(RecordError) as error:
        load(raw)
    assert named in str(error.value)


@pytest.mark.parametrize("agreement_file, because", [("generations_tuned_at_training_precision.jsonl", ["precision"]),
                                                    ("generations_tuned.jsonl", [])])
def test_a_schema_1_reload_record_made_its_agreement_file_for_the_precision_alone(agreement_file, because):
    raw = schema_1()
    precision = {"adapter": ["bfloat16"], "unquantized": ["float32"]}
    raw["adapter"]["reload"] = {"trained_precision": precision, "deployed_precision": precision, "tensors": 48,
                                "missing": [], "differing_max_abs": {}, "scaling_differs": {},
                                "agreement_file": agreement_file}  # as runs recorded it before 2026-12-06
    assert load(raw).adapter.reload.agreement_because == because


# ------------------------------------------------------------------ the sections other modules make
def saved_json() -> dict:
    """A `saved` section as harness.recipe.deployed.record writes it (a folder that renders one prompt, not the other)."""
    tokens = {"eos": "<|endoftext|>", "eos_id": 32000, "pad": "<unk>", "pad_id": 0, "bos": "<s>", "bos_id": 1,
              "unk": "<unk>", "unk_id": 0, "ids": {"<|end|>": 32007}}
    prompts = {"one user turn": {"text": "<|user|>\nHi<|end|>\n<|assistant|>\n", "ids": [32010, 13, 32001, 13]},
               "a follow-up turn": {"error": "TemplateError: no template"}}
    return {"folder": "adapter", "files": ["tokenizer_config.json"], "written_by": {"trl": "1.16.0"},
            "deployed_generations": "tokenizer loaded from the saved folder",
            "tokenizer": {"trained": tokens, "saved": dict(tokens), "class": "TokenizersBackend",
                          "fields": {"eos": {"file": "tokenizer_config.json", "field": "eos_token"}}},
            "template": {"file": None, "trained": prompts, "saved": copy.deepcopy(prompts), "chat_template": None, "same_source": True},
            "generation_config": {"file": "adapter/generation_config.json", "in_folder": True, "eos_token_id": [32000, 32007],
                                  "pad_token_id": None, "bos_token_id": 1, "transformers_version": "5.23.0"}}


def test_the_saved_folders_record_reads_typed_and_writes_its_json():
    raw = load(schema_1()).to_json()
    raw["saved"] = saved_json()
    saved = load(raw).saved
    assert saved.tokenizer.saved.eos == "<|endoftext|>" and saved.tokenizer.tokenizer_class == "TokenizersBackend"
    assert saved.tokenizer.fields["eos"].file == "tokenizer_config.json"
    assert saved.template.saved["one user turn"].ids == [32010, 13, 32001, 13]
    assert saved.template.saved["a follow-up turn"].error == "TemplateError: no template"
    assert saved.generation_config.eos_token_id == [32000, 32007]
    assert load(raw).to_json() == raw  # `class` stays `class` in the JSON


@pytest.mark.parametrize("change, named", [
    (lambda saved: saved["tokenizer"]["saved"].update(eos_id="32000"), "run.json.saved.tokenizer.saved.eos_id"),
    (lambda saved: saved["tokenizer"]["fields"]["eos"].pop("file"), "run.json.saved.tokenizer.fields.eos.file: missing"),
    (lambda saved: saved["template"].update(same_source="yes"), "run.json.saved.template.same_source"),
    (lambda saved: saved["template"]["saved"]["one user turn"].update(ids="32010"),
     "run.json.saved.template.saved.one user turn.ids"),
    (lambda saved: saved["generation_config"].update(eos_token_id="32000"), "run.json.saved.generation_config.eos_token_id"),
    (lambda saved: saved.update(folders="adapter"), "run.json.saved: unknown field(s) folders"),
])
def test_a_saved_folder_record_of_the_wrong_shape_is_named(change, named):
    raw = load(schema_1()).to_json()
    raw["saved"] = saved_json()
    change(raw["saved"])
    with pytest.raises(RecordError) as error:
        load(raw)
    assert named in str(error.value)


def test_the_adaptations_and_library_warnings_read_typed():
    raw = load(schema_1()).to_json()
    raw["compat"] = [{"library": "trl 0.14.0", "setting": "max_length", "action": "passed as max_seq_length",
                      "description": "trl 0.14.0: max_length passed as max_seq_length"}]
    raw["library_warnings"] = [{"library": "trl 0.16.0", "category": "FutureWarning", "message": "`x` is deprecated",
                                "settings": ["training.max_length"], "where": "trl/sft.py:3", "count": 2}]
    run = load(raw)
    assert run.compat[0].description == "trl 0.14.0: max_length passed as max_seq_length"
    assert run.library_warnings[0].settings == ["training.max_length"] and run.library_warnings[0].count == 2
    assert run.to_json() == raw


@pytest.mark.parametrize("change, named", [
    (lambda raw: raw.update(compat=[{"library": "trl 0.14.0", "setting": "max_length", "action": "renamed"}]),
     "run.json.compat[0].description: missing"),
    (lambda raw: raw.update(library_warnings=[{"library": "trl 0.16.0", "category": "FutureWarning", "message": "m",
                                               "settings": [], "where": "trl", "count": "2"}]),
     "run.json.library_warnings[0].count"),
    (lambda raw: raw.update(library_warnings=[{"library": "trl 0.16.0", "category": "FutureWarning", "message": "m",
                                               "settings": "training.max_length", "where": "trl", "count": 1}]),
     "run.json.library_warnings[0].settings"),
])
def test_an_adaptation_or_library_warning_of_the_wrong_shape_is_named(change, named):
    raw = load(schema_1()).to_json()
    change(raw)
    with pytest.raises(RecordError) as error:
        load(raw)
    assert named in str(error.value)


def test_the_environment_reads_typed_and_a_schema_1_run_without_a_process_count_had_one():
    raw = schema_1()
    run = load(raw)
    assert run.environment.python == raw["environment"]["python"] and run.environment.packages["trl"] == "1.16.0"
    assert run.environment.device["kind"] == "cpu" and run.processes == 1
    assert run.environment.as_dict() == raw["environment"]  # what harness.env's functions and the baselines read
    del raw["environment"]["processes"]
    assert load(raw).processes == 1


@pytest.mark.parametrize("change, named", [
    (lambda environment: environment.update(processes="2"), "run.json.environment.processes"),
    (lambda environment: environment.update(packages=["trl==1.16.0"]), "run.json.environment.packages"),
    (lambda environment: environment["packages"].update(trl=1.16), "run.json.environment.packages.trl"),
    (lambda environment: environment.pop("python"), "run.json.environment.python: missing"),
])
def test_an_environment_of_the_wrong_shape_is_named(change, named):
    raw = load(schema_1()).to_json()
    change(raw["environment"])
    with pytest.raises(RecordError) as error:
        load(raw)
    assert named in str(error.value)
