"""The recipe, phase by phase, as plain functions, and what each of its two stages records.

    prepare_stage:   load_quantized_model -> add_adapters -> load_data -> build_trainer (+ first batch)
    train_and_score: train -> save_adapter -> reload_tuned_model -> generate -> score
                     (harness/recipe/reload.py: proof the reloaded adapter is the trained one;
                     harness/recipe/deployed.py: the saved folder's tokenizer and generation config, which
                     the deployed generations use)

Each phase is what the reference recipe does (../shared/RECIPE.md), with the settings taken
from `RecipeConfig`; the two stage functions return the records (the run record, `harness.recipe.record`,
and the artifacts) that the suites, baselines and report read. Caching, publishing and the
several-process protocol around them are `harness/run/stages.py`. Nothing downstream re-runs a phase.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import env, files, progress
from harness.recipe import compat, data, deployed, metrics, reload
from harness.recipe.config import RecipeConfig
from harness.recipe.generate import generate_batched
from harness.recipe.models import CONVERSION_RECORD, Checkpoint, check_special_tokens, tokens_as_read
from harness.recipe.profiles import ModelOptions, Profile
from harness.recipe.record import (Adapter, AsShipped, Correction, DataSummary, LossPoint, Metrics, Prediction,
                                   PreparedRun, PreparedTraining, Reload, Structure, TokenFacts, Tokens,
                                   TokensAsRead, TrainedRun, TrainedTraining, extended, from_json)

log = logging.getLogger("harness.recipe.qlora_sft")

# A fixed example whose rendering is compared with the baseline (template drift fails with a diff).
# It is the harness's, not the run's data: keyed by the default columns whatever the config reads.
TEMPLATE_EXAMPLE = {data.DEFAULT_COLUMNS.source: "The Force is strong in you!",
                    data.DEFAULT_COLUMNS.target: "Strong in you, the Force is! Yes, hrrrm."}


# ------------------------------------------------------------------ phases
def load_tokenizer(checkpoint: Checkpoint):
    """The checkpoint's tokenizer, checked against the model family's special-token facts.

    Wrong special tokens are an error (`ModelInputError`) naming the token and the library that
    read it: a run on the wrong EOS would measure nothing.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint.path)
    check_special_tokens(tokenizer, checkpoint.special_tokens, str(checkpoint.path))
    return tokenizer


def load_quantized_model(checkpoint: Checkpoint, config: RecipeConfig):
    """Step 1: the base model in 4-bit NF4 with double quantization, and its tokenizer."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(checkpoint)
    quantized_model = AutoModelForCausalLM.from_pretrained(
        checkpoint.path, quantization_config=config.quantization.to_bnb(), device_map=_device_map()
    )
    env.apply_bnb_pin(quantized_model)  # the profile's CPU pin: bnb's 4-bit eval path
    return quantized_model, tokenizer


def prepare_tokenizer(tokenizer, config: RecipeConfig | None = None):
    """Step 4: the recipe's fix for PAD == EOS — pad with UNK so EOS keeps its labels.

    `tokenizer.pad_token = "as_shipped"` (a recipe variant from before the fix) keeps the
    tokenizer's own pad token."""
    choice = (config or RecipeConfig()).tokenizer.pad_token
    if choice == "unk_token":
        tokenizer.pad_token = tokenizer.unk_token
    elif choice != "as_shipped":
        raise ValueError(f"tokenizer.pad_token {choice!r}: expected 'unk_token' (the recipe's fix) or 'as_shipped'")
    return tokenizer


def add_adapters(quantized_model, config: RecipeConfig):
    """Step 2: `prepare_model_for_kbit_training`, then LoRA."""
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    # LoRA's A matrices come from torch's global generator. Seeded here, a run does not depend on
    # what the process did before (a cold run builds its checkpoint with its own seed, a warm one
    # does not), so cold and cached-checkpoint runs of one config train the same adapters.
    set_seed(config.training.seed)
    prepared = prepare_model_for_kbit_training(quantized_model)
    return get_peft_model(prepared, config.lora.to_peft())


def load_data(config: RecipeConfig) -> data.YodaSplit:
    """Step 3: the Yoda sentences, validated for the configured columns and split by content hash."""
    return data.load_split(config.data.source, config.data.eval_fraction, data.Columns.of(config.data))


def to_training_dataset(rows: list[dict], config: RecipeConfig, fmt: str | None = None):
    from datasets import Dataset

    return Dataset.from_list(data.format_rows(rows, fmt or config.data.format, data.Columns.of(config.data)))


def build_trainer(peft_model, tokenizer, train_dataset, config: RecipeConfig, output_dir: Path):
    """Step 5: the `SFTTrainer` with the recipe's `SFTConfig`."""
    from trl import SFTTrainer

    sft_config, adaptations = config.training.to_sft_config(str(output_dir))
    for adaptation in adaptations:
        log.warning("SFTConfig: %s", adaptation)
    trainer = SFTTrainer(model=peft_model, processing_class=tokenizer, args=sft_config, train_dataset=train_dataset)
    trainer.add_callback(progress.training_callback())
    trainer.harness_adaptations = adaptations
    return trainer


def first_collated_batch(trainer) -> dict:
    """One real batch from the trainer's own dataloader and collator."""
    return next(iter(trainer.get_train_dataloader()))


def train(trainer) -> dict:
    result = trainer.train()
    return dict(result.metrics)


def save_adapter(trainer, directory: Path) -> list[str]:
    """Step 6: adapter + tokenizer files, as `trainer.save_model` writes them."""
    trainer.save_model(str(directory))
    return sorted(p.name for p in directory.iterdir())


def reload_tuned_model(checkpoint: Checkpoint, adapter_dir: Path, config: RecipeConfig, trainable: bool = False):
    """The base model loaded again in 4 bits, with the saved adapter on top — what users deploy."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        checkpoint.path, quantization_config=config.quantization.to_bnb(), device_map=_device_map()
    )
    env.apply_bnb_pin(base)  # the profile's CPU pin: bnb's 4-bit eval path
    return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=trainable)


def generate(model, tokenizer, sentences: list[str], config: RecipeConfig):
    """Step 7 over the evaluation split, batched and greedy."""
    settings = config.generation
    autocast = _autocast_dtype(config)
    return generate_batched(model, tokenizer, sentences, settings.max_new_tokens, settings.batch_size, autocast)


def prepare(trainer, examples: list[dict]) -> list[dict]:
    """Tokenize + pack `examples` with the trainer's own dataset preparation: its rows."""
    from datasets import Dataset

    return compat.prepared_rows(trainer, Dataset.from_list(examples), trainer.args, trainer.args.packing, "check")


def prepare_and_collate(trainer, examples: list[dict]) -> dict:
    """Tokenize + pack + collate `examples` with the trainer's own preparation and collator."""
    return trainer.data_collator(prepare(trainer, examples))


@dataclass(frozen=True)
class PackingExpectation:
    """What the installed trl's wrapped packing must make of some conversations (`compat.Packing`)."""

    tokens: Counter  # every token the packer is given: the templated conversations and the separators it adds
    rows: int
    dropped: int  # tokens of the shorter rows this trl drops (trl <= 0.14), else 0


def expected_packing(trainer, examples: list[dict]) -> PackingExpectation:
    """The tokens and rows `prepare(trainer, examples)` must give, by `compat.packing`."""
    tokenizer = trainer.processing_class
    eos = tokenizer.eos_token_id
    conversations = [example["messages"] for example in examples]
    templated = [_template_ids(tokenizer, messages) for messages in conversations]
    chars = _text_chars(tokenizer, conversations)
    packing = compat.packing(trainer.args)
    tokens = Counter(token for ids in templated for token in packing.with_separator(ids, eos))
    return PackingExpectation(tokens, packing.rows(templated, chars, eos), packing.dropped_tokens(templated, chars, eos))


# ------------------------------------------------------------------ the stages' contents
@dataclass
class LiveObjects:
    """What exists only in the process that ran (or rebuilt) the recipe."""

    checkpoint: Checkpoint
    tokenizer: Any
    peft_model: Any
    trainer: Any
    split: data.YodaSplit


# ------------------------------------------------------------------ stages


@dataclass
class Prepared:
    """The prepared stage in memory: its records, and the live objects training continues from."""

    record: PreparedRun
    files: dict[str, Any]  # artifact name -> payload
    live: LiveObjects
    quantized_model: Any
    lora_b_before: float
    phase: "_Phases"
    consumed: bool = False  # trained since: its live objects are no longer the prepared ones


class _Phases:
    """Wall time of each phase, with a progress line on stderr (long phases show progress)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        progress_line(f"{name} ...")
        start = time.perf_counter()
        try:
            yield
        except Exception as error:
            # Which phase of the recipe failed, for the one BROKEN line a crash becomes (harness.checks.crash).
            if getattr(error, "harness_phase", None) is None:
                with contextlib.suppress(AttributeError, TypeError):
                    error.harness_phase = name
            raise
        self.seconds[name] = round(time.perf_counter() - start, 3)
        progress_line(f"{name} done in {self.seconds[name]:.1f}s")


def prepare_stage(profile: Profile, options: ModelOptions, config: RecipeConfig, inputs, state) -> Prepared:
    """Recipe steps 1-5 up to the first optimizer step, and every record the structural checks read.

    `inputs` are the run's (harness.run.stages.RunInputs): its key and environment, and the data
    split (step 3) as it was loaded and validated to make that key."""
    import tempfile

    phase = _Phases()
    with phase("checkpoint"), state.main_process_first():
        # Rank 0 builds the checkpoint while the others wait at a barrier, then they load it:
        # built concurrently, every rank would write and rename the same `.partial` directory.
        checkpoint = profile.build_checkpoint(options)
    with phase("load"):
        quantized_model, tokenizer = load_quantized_model(checkpoint, config)
        tokenizer_as_shipped = AsShipped(pad=tokenizer.pad_token, eos=tokenizer.eos_token)
        # What the library read: from the source file when the harness converted it (and had to
        # correct tokens), else from this load. Checked against the family's facts by the suites.
        as_read = _conversion_tokens(checkpoint) or tokens_as_read(tokenizer, checkpoint.special_tokens)
        prepare_tokenizer(tokenizer, config)
        quantized_linear_modules = _linear4bit_modules(quantized_model)
        unquantized_modules = _unquantized_named(quantized_model)
        footprint_loaded = quantized_model.get_memory_footprint()
    with phase("lora"):
        peft_model = add_adapters(quantized_model, config)
        footprint_adapted = peft_model.get_memory_footprint()
        trainable, total = peft_model.get_nb_trainable_parameters()
        requires_grad_before = _requires_grad(peft_model)
        lora_scaling = reload.lora_scaling(peft_model)
    with phase("data"):
        split = inputs.split  # loaded and validated with the run's inputs (their key hashes these rows)
        train_dataset = to_training_dataset(split.train, config)
        conversations = [ex["messages"] for ex in data.format_rows(split.train, "conversational", split.columns)]
        templated = [_template_ids(tokenizer, messages) for messages in conversations]
        templated_tokens = sum(len(ids) for ids in templated)
    with phase("trainer"):
        # The trainer writes nothing with save_strategy "no"; whatever it might goes to a temporary
        # directory, never into a run directory.
        trainer = build_trainer(peft_model, tokenizer, train_dataset, config, Path(tempfile.mkdtemp(prefix="yoda-trainer-")))
        requires_grad_after = _requires_grad(trainer.model)
        batch = first_collated_batch(trainer)
        packed_rows = len(trainer.train_dataset)
        packing = compat.packing(trainer.args)
        packing_added_tokens = compat.packing_added_tokens(templated, tokenizer.eos_token_id, packing)
        packed_rows_predicted = packing.rows(templated, _text_chars(tokenizer, conversations), tokenizer.eos_token_id)
        try:
            completion_batch = _completion_only_batch(trainer, split, config)
        except (AttributeError, TypeError) as error:  # private trl API that older releases lack
            completion_batch = {"unsupported": f"this trl cannot prepare completion-only data here: {error}"}
        prediction = metrics.predict_structure(quantized_model.config, config.lora.r, config.lora.target_modules)
    prepared_record = PreparedRun(
        key=inputs.key,
        profile=profile.name,
        profile_kind=profile.kind,
        profile_file=str(profile.path) if profile.path else None,
        reference=dict(profile.reference),
        skips=dict(profile.skips),
        thresholds=dict(profile.thresholds),
        model=checkpoint.name,
        model_identity=profile.identity(options),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        config=config.to_dict(),
        environment=inputs.environment,
        version_set=env.version_set_id(inputs.environment.as_dict()),
        harness=dict(env.harness_revision(), source=inputs.harness_source),
        phase_seconds=dict(phase.seconds),
        data=DataSummary(**split.summary(), content_digest=inputs.data_identity),
        tokens=Tokens(
            as_read=from_json(TokensAsRead, as_read, "tokens.as_read"),
            corrections=from_json(list[Correction], checkpoint.corrections(), "tokens.corrections"),
            facts=_facts_record(checkpoint.special_tokens),
            as_shipped=tokenizer_as_shipped,
            pad=tokenizer.pad_token, pad_id=tokenizer.pad_token_id,
            eos=tokenizer.eos_token, eos_id=tokenizer.eos_token_id,
            role_markers=list(checkpoint.special_tokens.role_markers),
            end_of_turn=checkpoint.special_tokens.end_of_turn,
        ),
        structure=Structure(
            quantized_linear_modules=quantized_linear_modules,
            unquantized_modules=unquantized_modules,
            target_modules=list(config.lora.target_modules),
            footprint_loaded_bytes=footprint_loaded,
            footprint_adapted_bytes=footprint_adapted,
            trainable_parameters=trainable,
            total_parameters=total,
            requires_grad_before_trainer=requires_grad_before,
            requires_grad_after_trainer=requires_grad_after,
            lora_scaling=lora_scaling,
            predicted=Prediction(**prediction.as_dict()),
            predicted_quantized_modules=list(prediction.quantized_modules),
        ),
        training=PreparedTraining(
            sft_config_adaptations=trainer.harness_adaptations,
            train_batch_size=trainer._train_batch_size,
            packed_rows=packed_rows,
            templated_tokens=templated_tokens,
            packing_added_tokens=packing_added_tokens,
            packed_rows_predicted=packed_rows_predicted,
            train_examples=len(split.train),
        ),
    )
    records = {"collated_batch.json": _batch_record(batch, tokenizer),
             "completion_only_batch.json": completion_batch,
             "template.json": _template_record(tokenizer, config)}
    live = LiveObjects(checkpoint=checkpoint, tokenizer=tokenizer, peft_model=peft_model, trainer=trainer, split=split)
    return Prepared(prepared_record, records, live, quantized_model, _lora_b_abs_sum(peft_model), phase)


def train_and_score(prepared: Prepared, config: RecipeConfig, out: Path | None, state) -> TrainedRun | None:
    """Recipe steps 5-7 from the prepared stage: train, save, reload, generate, score; the whole run's record."""
    import torch

    phase, live = prepared.phase, prepared.live
    trainer, peft_model, tokenizer, split = live.trainer, live.peft_model, live.tokenizer, live.split
    with phase("train"):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        train_metrics = train(trainer)
        peak_gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    lora_b_after = _lora_b_abs_sum(peft_model)
    if not state.is_main_process:
        return None  # its share of training is done; rank 0 saves, generates and scores
    adapter_dir = out / "adapter"
    with phase("save"):
        adapter_files = save_adapter(trainer, adapter_dir)
    sentences = [row[split.columns.source] for row in split.eval]
    with phase("generate"):
        tuned_in_memory = generate(peft_model, tokenizer, sentences, config)
        with peft_model.disable_adapter():
            base = generate(peft_model, tokenizer, sentences, config)
    with phase("reload"):
        # As deployed: base + saved adapter, with the tokenizer (and any generation config) that
        # save_model wrote beside it, loaded from the folder as serving code loads them.
        reloaded = reload_tuned_model(live.checkpoint, adapter_dir, config)
        base_generation_config = deployed.deployed_generation_config(reloaded)
        deployed_tokenizer = deployed.load_tokenizer(adapter_dir)
        saved_generation_config = deployed.load_generation_config(adapter_dir)
        deployed.use_generation_config(reloaded, saved_generation_config)
        saved = deployed.record(adapter_dir, trainer.processing_class, deployed_tokenizer,
                                deployed.deployed_generation_config(reloaded),
                                deployed.generation_config_source(adapter_dir, live.checkpoint, saved_generation_config),
                                dict(live.checkpoint.special_tokens.ids), env.package_versions(deployed.WRITERS))
        tuned = generate(reloaded, deployed_tokenizer, sentences, config)
        reload_record = {"trained_precision": reload.precision(peft_model),
                         "deployed_precision": reload.precision(reloaded),
                         "agreement_file": reload.DEPLOYED_FILE, "agreement_because": []}
        generations_at_training_precision = None
        # The weights check compares like with like: the reloaded adapter at the trained precision,
        # generating with the trained tokenizer and the base's generation config. The deployed
        # outputs differ from that wherever the saved folder does (suites/test_deployed.py says how).
        if not reload.same_precision(peft_model, reloaded):
            reload.to_training_precision(reloaded, peft_model)
            reload_record["agreement_because"].append("precision")
        if deployed.mismatches(saved) or saved_generation_config is not None:
            deployed.use_generation_config(reloaded, base_generation_config)
            reload_record["agreement_because"].append("saved folder")
        if reload_record["agreement_because"]:
            generations_at_training_precision = generate(reloaded, tokenizer, sentences, config)
            reload_record["agreement_file"] = reload.TRAINING_PRECISION_FILE
        reload_record.update(reload.weights_record(peft_model, reloaded))
        del reloaded
    with phase("score"):
        scores = metrics.quality_scores(split.eval, base, tuned, split.columns)
    generations = {"generations_base.jsonl": base, reload.DEPLOYED_FILE: tuned,
                   "generations_tuned_in_memory.jsonl": tuned_in_memory,
                   reload.TRAINING_PRECISION_FILE: generations_at_training_precision}
    for name, rows in generations.items():
        if rows is not None:
            prepared.files[name] = [dict(g.as_dict(), **split.columns.reference_record(row))
                                    for g, row in zip(rows, split.eval)]
    training = extended(
        prepared.record.training, TrainedTraining,
        global_step=trainer.state.global_step,
        loss_history=[LossPoint(step=e["step"], loss=e["loss"]) for e in trainer.state.log_history if "loss" in e],
        train_loss=train_metrics.get("train_loss"),
        train_runtime=train_metrics.get("train_runtime"),
        lora_b_abs_sum_before=prepared.lora_b_before,
        lora_b_abs_sum_after=lora_b_after,
        peak_gpu_allocated_bytes=peak_gpu,
        peak_rss_bytes=_peak_rss(),
    )
    adapter = Adapter(**_adapter_record(adapter_dir, adapter_files), reload=from_json(Reload, reload_record, "reload"))
    return extended(
        prepared.record, TrainedRun, stage="trained", created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        phase_seconds=dict(phase.seconds), training=training, adapter=adapter, saved=saved,
        metrics=from_json(Metrics, scores, "metrics"))


# ------------------------------------------------------------------ helpers
def _conversion_tokens(checkpoint: Checkpoint) -> dict | None:
    record = checkpoint.path / CONVERSION_RECORD
    return files.read_json(record).get("tokens_as_read") if record.is_file() else None


def _facts_record(facts) -> TokenFacts:
    return TokenFacts(eos=facts.eos, bos=facts.bos, unk=facts.unk, pad_as_shipped=facts.pad_as_shipped,
                      ids=dict(facts.ids))


def _template_ids(tokenizer, messages, add_generation_prompt: bool = False) -> list[int]:
    return compat.template_ids(tokenizer, messages, add_generation_prompt)


def _text_chars(tokenizer, conversations: list[list[dict]]) -> list[int]:
    """Characters of each templated conversation (what trl <= 0.14 fills its packing buffer by)."""
    return [len(tokenizer.apply_chat_template(messages, tokenize=False)) for messages in conversations]


def _template_record(tokenizer, config: RecipeConfig) -> dict:
    example = data.to_conversation(TEMPLATE_EXAMPLE)
    rendered = tokenizer.apply_chat_template(example["messages"], tokenize=False)
    prompt = tokenizer.apply_chat_template(example["messages"][:1], tokenize=False, add_generation_prompt=True)
    ids = _template_ids(tokenizer, example["messages"])
    return {
        "example": example,
        "rendered": rendered,
        "generation_prompt": prompt,
        "token_ids": list(ids),
        "tokens": tokenizer.convert_ids_to_tokens(list(ids)),
        "chat_template": tokenizer.chat_template,
    }


def _completion_only_batch(trainer, split: data.YodaSplit, config: RecipeConfig) -> dict:
    """A batch collated as with `completion_only_loss=True` on prompt/completion data.

    Unpacked, so each row is one example and the harness's own prompt length (chat template
    with the generation prompt) says where the completion starts.
    """
    import copy

    from datasets import Dataset

    tokenizer = trainer.processing_class
    args = copy.deepcopy(trainer.args)
    args.completion_only_loss, args.packing = True, False
    examples = data.format_rows(split.train[:8], "prompt_completion", split.columns)
    saved = trainer.completion_only_loss
    trainer.completion_only_loss = True
    try:
        rows = compat.prepared_rows(trainer, Dataset.from_list(examples), args, False, "completion-only")
    finally:
        trainer.completion_only_loss = saved
    with compat.completion_only_collator(trainer) as collator:
        record = _batch_record(collator(rows), tokenizer)
    record["prompt_lengths"] = [len(_template_ids(tokenizer, ex["prompt"], add_generation_prompt=True))
                                for ex in examples]
    record["sequence_lengths"] = [len(row["input_ids"]) for row in rows]
    return record


def _batch_record(batch: dict, tokenizer) -> dict:
    record = {name: tensor.tolist() for name, tensor in batch.items() if hasattr(tensor, "tolist")}
    record["decoded"] = [tokenizer.decode(row, skip_special_tokens=False) for row in record["input_ids"]]
    return record


def _adapter_record(adapter_dir: Path, file_names: list[str]) -> dict:
    weights = adapter_dir / "adapter_model.safetensors"
    record = {"files": file_names, "safetensors_bytes": None, "safetensors_data_bytes": None}
    if weights.exists():
        summary = files.safetensors_summary(weights)
        record.update(safetensors_bytes=weights.stat().st_size, safetensors_data_bytes=summary["data_bytes"],
                      tensor_parameters=summary["parameters"], dtypes=summary["dtypes"], tensors=summary["tensors"])
    return record


def _linear4bit_modules(model) -> list[str]:
    import bitsandbytes as bnb

    return [name for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)]


def _unquantized_named(model) -> dict[str, str]:
    """Class names of the embeddings and output head (which must stay unquantized)."""
    return {
        "input_embeddings": type(model.get_input_embeddings()).__name__,
        "output_embeddings": type(model.get_output_embeddings()).__name__,
    }


def _requires_grad(model) -> list[str]:
    return sorted(name for name, parameter in model.named_parameters() if parameter.requires_grad)


def _lora_b_abs_sum(model) -> float:
    return float(sum(p.detach().abs().sum().item() for n, p in model.named_parameters() if "lora_B" in n))


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _device_map():
    import torch

    # One process per GPU under torchrun / accelerate launch: each rank loads onto its own GPU.
    if torch.cuda.is_available():
        return {"": int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))}
    return "cpu"


def _autocast_dtype(config: RecipeConfig):
    import torch

    return torch.bfloat16 if config.training.resolved_bf16() else None


def progress_line(message: str) -> None:
    progress.say(message)
