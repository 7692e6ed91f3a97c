"""The recipe's phases on `tiny`, and the run cache (hit, miss, --yoda-fresh, interrupted run)."""

import json

import pytest

from harness.recipe import profiles, qlora_sft
from harness.recipe.data import load_rows
from harness.run import artifacts, stages

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def options(shared_models_dir):
    return profiles.ModelOptions(models_dir=shared_models_dir)


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    """The tiny profile's recipe on 48 rows, one epoch, short generations: seconds, not minutes."""
    rows, _ = load_rows("bundled")
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows[:48]))
    return profiles.PROFILES["tiny"].recipe_config().with_overrides(
        {"data.source": str(path), "training.num_train_epochs": 1, "generation.max_new_tokens": 8}
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, options, small_config):
    runs = tmp_path_factory.mktemp("runs")
    return runs, stages.run(profiles.PROFILES["tiny"], options, runs, config=small_config)


def test_load_gives_a_4bit_model_and_the_checked_tokenizer(options):
    import bitsandbytes as bnb

    profile = profiles.PROFILES["tiny"]
    config = profile.recipe_config()
    model, tokenizer = qlora_sft.load_quantized_model(profile.build_checkpoint(options), config)
    assert isinstance(model.model.layers[0].self_attn.qkv_proj, bnb.nn.Linear4bit)
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)
    assert tokenizer.pad_token == tokenizer.eos_token  # as shipped
    qlora_sft.prepare_tokenizer(tokenizer)
    assert tokenizer.pad_token == "<unk>" != tokenizer.eos_token
    peft_model = qlora_sft.add_adapters(model, config)
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert trainable == sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)


def test_adapters_do_not_depend_on_what_the_process_drew_before(options):
    # A cold run builds its checkpoint (seeding torch) before LoRA; a warm one does not.
    import torch

    profile = profiles.PROFILES["tiny"]
    config = profile.recipe_config()
    checkpoint = profile.build_checkpoint(options)

    def first_lora_a(draws_before: int):
        torch.rand(draws_before)
        model, _ = qlora_sft.load_quantized_model(checkpoint, config)
        peft_model = qlora_sft.add_adapters(model, config)
        return next(p for n, p in peft_model.named_parameters() if "lora_A" in n).detach().clone()

    assert torch.equal(first_lora_a(0), first_lora_a(1000))


def test_a_run_records_every_phase(first_run):
    runs, run = first_run
    record = run.record
    assert record.status == "complete" and record.stage == "trained" and not run.reused
    assert set(record.phase_seconds) == {"checkpoint", "load", "lora", "data", "trainer", "train", "save",
                                         "generate", "reload", "score"}
    assert record.structure.footprint_loaded_bytes == record.structure.predicted.footprint_loaded_bytes
    assert record.training.global_step >= 1
    for name in ("collated_batch.json", "completion_only_batch.json", "template.json",
                 "generations_base.jsonl", "generations_tuned.jsonl", "generations_tuned_in_memory.jsonl"):
        assert (run.directory / name).is_file(), name
    batch = run.artifact("collated_batch.json")
    assert len(batch["input_ids"][0]) == 64 and len(batch["decoded"]) == len(batch["input_ids"])
    generations = run.generations("tuned")
    assert len(generations) == record.data.eval_rows
    assert {g["stop_reason"] for g in generations} <= {"eos", "max_new_tokens", "eos_then_more"}
    assert (run.directory / "adapter" / "adapter_model.safetensors").is_file()


def test_a_run_proves_its_reloaded_adapter_is_the_trained_one(first_run):
    runs, run = first_run
    reload = run.record.adapter.reload
    assert reload.tensors == 48 and not reload.missing and not reload.differing_max_abs
    assert not reload.scaling_differs
    # This trl trains QLoRA adapters in bf16 and peft reloads them in fp32: the outputs the
    # agreement check reads are the reload cast back to the trained precision.
    if reload.trained_precision != reload.deployed_precision:
        assert reload.agreement_file == "generations_tuned_at_training_precision.jsonl"
    assert (run.directory / reload.agreement_file).is_file()
    # The saved folder matches the trained tokenizer here: only the precision made the agreement file.
    assert reload.agreement_because == (["precision"] if reload.trained_precision != reload.deployed_precision else [])


def test_a_run_generates_as_deployed_with_the_saved_folders_tokenizer(first_run):
    from harness.recipe import deployed
    from harness.recipe.generate import build_prompt

    _, run = first_run
    saved = run.record.saved
    assert saved.deployed_generations == deployed.DEPLOYED_GENERATIONS and deployed.mismatches(saved) == []
    assert {"tokenizer_config.json", "tokenizer.json", "chat_template.jinja"} <= set(saved.files)
    assert saved.tokenizer.saved.eos == run.record.tokens.eos
    assert saved.tokenizer.saved.pad == run.record.tokens.pad
    served = deployed.load_tokenizer(run.directory / saved.folder)
    tuned = run.generations("tuned")
    assert [row["prompt"] for row in tuned] == [build_prompt(served, row["source"]) for row in tuned]


def test_same_inputs_reuse_the_finished_run(first_run, options, small_config):
    runs, run = first_run
    again = stages.run(profiles.PROFILES["tiny"], options, runs, config=small_config)
    assert again.reused and again.directory == run.directory and again.record == run.record


def test_changed_config_misses_the_cache(first_run, options, small_config):
    runs, run = first_run
    changed = small_config.with_overrides({"generation.max_new_tokens": 6})
    other = stages.run(profiles.PROFILES["tiny"], options, runs, config=changed)
    assert not other.reused and other.directory != run.directory


def test_fresh_forces_a_new_run(first_run, options, small_config):
    runs, run = first_run
    fresh = stages.run(profiles.PROFILES["tiny"], options, runs, fresh=True, config=small_config)
    assert not fresh.reused and fresh.directory == run.directory
    assert fresh.record.created >= run.record.created


def test_interrupted_run_is_never_reused(tmp_path, options, small_config, monkeypatch):
    def interrupted(trainer):
        raise KeyboardInterrupt("killed during training")

    monkeypatch.setattr(qlora_sft, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stages.run(profiles.PROFILES["tiny"], options, tmp_path, config=small_config)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()
    finished = stages.run(profiles.PROFILES["tiny"], options, tmp_path, config=small_config)
    assert not finished.reused and artifacts.finished_run(tmp_path, finished.record.key) == finished.directory


def test_run_directory_without_complete_manifest_is_ignored(tmp_path):
    (tmp_path / "tiny-x").mkdir()
    (tmp_path / "tiny-x" / "run.json").write_text('{"status": "running"}')
    assert artifacts.finished_run(tmp_path, "tiny-x") is None
    (tmp_path / "tiny-x" / "run.json").write_text('{"status": "comp')
    assert artifacts.finished_run(tmp_path, "tiny-x") is None


def test_live_objects_can_be_prepared_for_a_reused_run(first_run, options, small_config):
    live = stages.prepare_live(profiles.PROFILES["tiny"], options, small_config)
    assert live.tokenizer.pad_token == "<unk>"
    batch = qlora_sft.prepare_and_collate(live.trainer, [{"messages": [{"role": "user", "content": "Hi there."},
                                                                    {"role": "assistant", "content": "There, hi."}]}])
    assert batch["input_ids"].shape[0] == 1


def test_live_objects_never_write_into_the_published_run(first_run, options, small_config):
    from tests.planted import tree_digest

    runs, run = first_run
    before = tree_digest(run.directory)
    live = stages.prepare_live(profiles.PROFILES["tiny"], options, small_config)
    qlora_sft.prepare_and_collate(live.trainer, [{"messages": [{"role": "user", "content": "Hi."},
                                                            {"role": "assistant", "content": "Hi, hmm."}]}])
    assert tree_digest(run.directory) == before
