"""The recipe, phase by phase, as plain functions — and its two stages, `prepare` and `run`.

    prepared: load_quantized_model -> add_adapters -> load_data -> build_trainer (+ first batch)
    trained:  train -> save_adapter -> reload_tuned_model -> generate -> score

Each phase is what the reference recipe does (../shared/RECIPE.md), with the settings taken
from `RecipeConfig`; `run` records what every phase produced in a run directory that the
suites, baselines and report read. Nothing downstream re-runs a phase.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import artifacts, compat, data, env, libwarnings, metrics, progress
from harness.config import RecipeConfig
from harness.generate import generate_batched
from harness.models import CONVERSION_RECORD, Checkpoint, check_special_tokens, tokens_as_read
from harness.profiles import ModelOptions, Profile

log = logging.getLogger("harness.recipe")

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
    return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=trainable)


def generate(model, tokenizer, sentences: list[str], config: RecipeConfig):
    """Step 7 over the evaluation split, batched and greedy."""
    settings = config.generation
    autocast = _autocast_dtype(config)
    return generate_batched(model, tokenizer, sentences, settings.max_new_tokens, settings.batch_size, autocast)


def prepare_and_collate(trainer, examples: list[dict], packing: bool | None = None) -> dict:
    """Tokenize + pack + collate `examples` with the trainer's own preparation and collator."""
    from datasets import Dataset

    packing = trainer.args.packing if packing is None else packing
    rows = compat.prepared_rows(trainer, Dataset.from_list(examples), trainer.args, packing, "check")
    return trainer.data_collator(rows)


# ------------------------------------------------------------------ the run
@dataclass
class LiveObjects:
    """What exists only in the process that ran (or rebuilt) the recipe."""

    checkpoint: Checkpoint
    tokenizer: Any
    peft_model: Any
    trainer: Any
    split: data.YodaSplit


@dataclass
class Run:
    directory: Path
    manifest: dict
    reused: bool = False
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def profile(self) -> str:
        return self.manifest["profile"]

    def artifact(self, name: str) -> Any:
        if name not in self._cache:
            path = self.directory / name
            self._cache[name] = artifacts.read_jsonl(path) if name.endswith(".jsonl") else artifacts.read_json(path)
        return self._cache[name]

    @property
    def metrics(self) -> dict:
        return self.manifest["metrics"]

    def generations(self, which: str = "tuned") -> list[dict]:
        return self.artifact(f"generations_{which}.jsonl")


# A run has two stages, each cached and published on its own: *prepared* (steps 1-5 up to the
# first optimizer step: what the structural checks read, in seconds) and *trained* (train, save,
# reload, generate, score). The prepared stage of run KEY is published as KEY-prepared; the
# trained run KEY holds every prepared record too, so a run directory stays whole.
PREPARED = "-prepared"


@dataclass(frozen=True)
class RunInputs:
    """Everything a run's result depends on, and the cache key made of it."""

    key: str
    environment: dict
    data_identity: str
    harness_source: str


def run_inputs(profile: Profile, options: ModelOptions, config: RecipeConfig, processes: int = 1) -> RunInputs:
    """The inputs of a run of `profile` with `config`, computed without running anything.

    The data is keyed by what is actually loaded (the hub's rows when the hub answers, else the
    bundled copy), the model by its content or revision, the harness by its own source.
    """
    # The number of processes is part of the inputs: 2 processes halve the optimizer steps.
    environment = dict(env.fingerprint(), processes=processes)
    identity = load_data(config).content_digest()
    source = env.harness_source_digest()
    key = artifacts.cache_key(profile.name, config.to_dict(), environment, profile.identity(options),
                              identity, source)
    return RunInputs(key, environment, identity, source)


def describe_cached(runs_dir: Path, key: str, structural_only: bool = False) -> str:
    """What a session is about to do: reuse which finished run (or prepared stage), or run the recipe."""
    def reuse(directory: Path, what: str) -> str:
        manifest = artifacts.read_json(directory / artifacts.MANIFEST)
        revision = env.describe_revision(manifest.get("harness") or {"source": "?"})
        return f"reusing {what} {directory} from {manifest.get('created', '?')} (harness {revision})"

    trained, prepared = artifacts.finished_run(runs_dir, key), artifacts.finished_run(runs_dir, key + PREPARED)
    if trained is not None:
        return reuse(trained, "run")
    if prepared is not None:
        return reuse(prepared, "prepared stage") + ("" if structural_only else "; then training")
    if structural_only:
        return f"preparing the recipe (structural checks only: nothing trains; no finished stage {key} in {runs_dir})"
    return f"running the recipe (no finished run {key} in {runs_dir})"


# ------------------------------------------------------------------ stages


@dataclass
class Prepared:
    """The prepared stage in memory: its records, and the live objects training continues from."""

    manifest: dict
    files: dict[str, Any]  # artifact name -> payload
    live: LiveObjects
    quantized_model: Any
    lora_b_before: float
    phase: "_Phases"
    consumed: bool = False  # trained since: its live objects are no longer the prepared ones


def prepare(profile: Profile, options: ModelOptions, runs_dir: Path, fresh: bool = False,
            config: RecipeConfig | None = None, session: str | None = None) -> tuple[Run, Prepared | None]:
    """The prepared stage for these inputs: everything the recipe builds before its first optimizer step.

    Reused from `runs_dir` (its own directory, or a finished trained run, which holds every prepared
    record too), or made and published now; a new one is also returned in memory, so that training in
    the same session continues from it instead of loading the model again.
    """
    config = config or profile.recipe_config()
    inputs = run_inputs(profile, options, config)
    with artifacts.run_lock(runs_dir, inputs.key + PREPARED):
        for key in (inputs.key, inputs.key + PREPARED):
            existing = _reusable_run(runs_dir, key, fresh, session)
            if existing is not None:
                _progress(f"reusing the prepared records of {existing}")
                return Run(existing, artifacts.read_json(existing / artifacts.MANIFEST), reused=True), None
        with compat.recording() as adaptations, libwarnings.recording(config) as library_warnings:
            prepared = _prepare(profile, options, config, inputs, _process_state())
        _record_adaptations(prepared.manifest, adaptations, library_warnings)
        prepared.manifest["session"] = session
        directory = _publish(runs_dir, inputs.key + PREPARED, prepared.manifest, prepared.files)
    return Run(directory, prepared.manifest), prepared


def run(profile: Profile, options: ModelOptions, runs_dir: Path, fresh: bool = False,
        config: RecipeConfig | None = None, session: str | None = None,
        prepared: Prepared | None = None) -> Run | None:
    """The finished (trained) run for these inputs: reused from `runs_dir`, or made now.

    `prepared` is this session's prepared stage in memory, if it made one: training continues from
    it. `session` identifies the caller's session (the pytest plugin passes one token shared by all
    its xdist workers) and is recorded in the run: with `fresh`, a run this session already made
    is reused, not made again.

    Under `torchrun` / `accelerate launch` every process calls this. The main process (rank 0)
    alone takes the lock, decides reuse, builds the checkpoint first, and after training saves,
    generates, scores and publishes the run, which it returns; the other ranks train with it
    (the Trainer wraps the model in DDP) and return None: they write nothing.
    """
    config = config or profile.recipe_config()
    state = _process_state()
    inputs = run_inputs(profile, options, config, state.num_processes)
    key = inputs.key
    # Only rank 0 takes the lock: a rank blocked on it would never reach the Trainer's collectives.
    lock = artifacts.run_lock(runs_dir, key) if state.is_main_process else contextlib.nullcontext()
    with lock:
        existing, staging = _reuse_or_stage(state, runs_dir, key, fresh, session)
        if existing is not None:
            _progress(f"reusing finished run {existing}")
            if not state.is_main_process:
                return None
            return Run(existing, artifacts.read_json(existing / artifacts.MANIFEST), reused=True)
        try:
            with compat.recording() as adaptations, libwarnings.recording(config) as library_warnings:
                if prepared is None or prepared.consumed or prepared.manifest["key"] != key:
                    prepared = _prepare(profile, options, config, inputs, state)
                prepared.consumed = True
                manifest = _train_and_score(prepared, config, staging, state)
            if not state.is_main_process:
                return None
            _record_adaptations(manifest, adaptations, library_warnings)
            manifest["session"] = session
            final = _publish(runs_dir, key, manifest, prepared.files, staging)
        except BaseException:
            import shutil

            if state.is_main_process and staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise
    return Run(final, manifest, reused=False)


def _record_adaptations(manifest: dict, adaptations, library_warnings: list) -> None:
    """Every release difference the harness adapted, and every deprecation the libraries announced:
    what an upgrade will break next (a trained run adds its own to its prepared stage's)."""
    manifest["compat"] = manifest.get("compat", []) + [adaptation.as_dict() for adaptation in adaptations]
    manifest["library_warnings"] = manifest.get("library_warnings", []) + list(library_warnings)


def _publish(runs_dir: Path, key: str, manifest: dict, files: dict[str, Any], staging: Path | None = None) -> Path:
    """Write a stage's records (manifest last) into its staging directory and rename it into place."""
    staging = staging or artifacts.staging_dir(runs_dir, key)
    try:
        for name, payload in files.items():
            writer = artifacts.write_jsonl if name.endswith(".jsonl") else artifacts.write_json
            writer(staging / name, payload)
        artifacts.write_json(staging / artifacts.MANIFEST, manifest)
        return artifacts.publish(staging, runs_dir, key)
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise


def prepare_live(profile: Profile, options: ModelOptions, config: RecipeConfig) -> LiveObjects:
    """Live objects of the prepared stage (tokenizer, model with fresh adapters, trainer built, not trained),
    made in a temporary directory: what the live checks use when the session holds none."""
    return _prepare(profile, options, config, run_inputs(profile, options, config), _process_state()).live


def _reuse_or_stage(state, runs_dir: Path, key: str, fresh: bool,
                    session: str | None) -> tuple[Path | None, Path | None]:
    """Rank 0's decision, on every rank: (the finished run to reuse, None) or (None, a new staging directory)."""
    decision = (None, None)
    if state.is_main_process:
        existing = _reusable_run(runs_dir, key, fresh, session)
        decision = (existing, None) if existing is not None else (None, artifacts.staging_dir(runs_dir, key))
    return _from_main(state, decision)


def _reusable_run(runs_dir: Path, key: str, fresh: bool, session: str | None) -> Path | None:
    """The finished run of `key` to reuse, if any.

    `fresh` means "not a run from before this session". Under pytest-xdist every worker asks for
    a fresh run: the first trains while the others wait on the lock, and they then reuse its run
    (it carries their shared session token) instead of each training again.
    """
    existing = artifacts.finished_run(runs_dir, key)
    if existing is None or not fresh:
        return existing
    if session is not None and artifacts.read_json(existing / artifacts.MANIFEST).get("session") == session:
        return existing
    return None


def _process_state():
    """This process's rank among those `torchrun` / `accelerate launch` started (rank 0 of 1 alone).

    accelerate's `PartialState` is what the Trainer uses: building `SFTConfig` (TrainingArguments
    `__post_init__` -> `_setup_devices`) creates it, and it initialises the process group from the
    launcher's environment (gloo on CPU, NCCL on GPUs). That happens only in the trainer phase;
    the recipe needs barriers before it (checkpoint, reuse), so it initialises the same state now,
    and the Trainer later finds the process group initialised and keeps it.
    """
    from datetime import timedelta

    import torch
    from accelerate import PartialState

    # use_cpu and the timeout as the recipe's SFTConfig has them (ddp_timeout defaults to 1800 s).
    return PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(seconds=1800))


def _from_main(state, value):
    """Rank 0's `value`, on every rank."""
    if state.num_processes == 1:
        return value
    import torch.distributed

    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


class _Phases:
    """Wall time of each phase, with a progress line on stderr (long phases show progress)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        _progress(f"{name} ...")
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        _progress(f"{name} done in {self.seconds[name]:.1f}s")


def _prepare(profile: Profile, options: ModelOptions, config: RecipeConfig, inputs: RunInputs, state) -> Prepared:
    """Recipe steps 1-5 up to the first optimizer step, and every record the structural checks read."""
    import tempfile

    phase = _Phases()
    record: dict[str, Any] = {}
    with phase("checkpoint"), state.main_process_first():
        # Rank 0 builds the checkpoint while the others wait at a barrier, then they load it:
        # built concurrently, every rank would write and rename the same `.partial` directory.
        checkpoint = profile.build_checkpoint(options)
    with phase("load"):
        quantized_model, tokenizer = load_quantized_model(checkpoint, config)
        tokenizer_as_shipped = {"pad": tokenizer.pad_token, "eos": tokenizer.eos_token}
        # What the library read: from the source file when the harness converted it (and had to
        # correct tokens), else from this load. Checked against the family's facts by the suites.
        as_read = _conversion_tokens(checkpoint) or tokens_as_read(tokenizer, checkpoint.special_tokens)
        prepare_tokenizer(tokenizer, config)
        record["quantized_linear_modules"] = _linear4bit_modules(quantized_model)
        record["unquantized_modules"] = _unquantized_named(quantized_model)
        footprint_loaded = quantized_model.get_memory_footprint()
    with phase("lora"):
        peft_model = add_adapters(quantized_model, config)
        footprint_adapted = peft_model.get_memory_footprint()
        trainable, total = peft_model.get_nb_trainable_parameters()
        requires_grad_before = _requires_grad(peft_model)
    with phase("data"):
        split = load_data(config)
        train_dataset = to_training_dataset(split.train, config)
        templated_tokens = sum(len(_template_ids(tokenizer, ex["messages"])) for ex in
                               data.format_rows(split.train, "conversational", split.columns))
    with phase("trainer"):
        # The trainer writes nothing with save_strategy "no"; whatever it might goes to a temporary
        # directory, never into a run directory.
        trainer = build_trainer(peft_model, tokenizer, train_dataset, config, Path(tempfile.mkdtemp(prefix="yoda-trainer-")))
        requires_grad_after = _requires_grad(trainer.model)
        batch = first_collated_batch(trainer)
        packed_rows = len(trainer.train_dataset)
        try:
            completion_batch = _completion_only_batch(trainer, split, config)
        except (AttributeError, TypeError) as error:  # private trl API that older releases lack
            completion_batch = {"unsupported": f"this trl cannot prepare completion-only data here: {error}"}
        prediction = metrics.predict_structure(quantized_model.config, config.lora.r, config.lora.target_modules)
    manifest = {
        "status": artifacts.COMPLETE,
        "stage": "prepared",
        "key": inputs.key,
        "profile": profile.name,
        "profile_kind": profile.kind,
        "profile_file": str(profile.path) if profile.path else None,
        # The published figures this profile must reproduce (the report compares them too).
        "reference": dict(profile.reference),
        "skips": dict(profile.skips),
        "thresholds": dict(profile.thresholds),
        "model": checkpoint.name,
        # By content or revision (a GGUF's sha256, a hub snapshot's commit): what a baseline refuses on.
        "model_identity": profile.identity(options),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.to_dict(),
        "environment": inputs.environment,
        "version_set": env.version_set_id(inputs.environment),
        "harness": dict(env.harness_revision(), source=inputs.harness_source),
        "phase_seconds": phase.seconds,
        "data": dict(split.summary(), content_digest=inputs.data_identity),
        "tokens": {
            "as_read": as_read,
            "corrections": checkpoint.corrections(),
            "facts": _facts_record(checkpoint.special_tokens),
            "as_shipped": tokenizer_as_shipped,
            "pad": tokenizer.pad_token, "pad_id": tokenizer.pad_token_id,
            "eos": tokenizer.eos_token, "eos_id": tokenizer.eos_token_id,
            "role_markers": list(checkpoint.special_tokens.role_markers),
            "end_of_turn": checkpoint.special_tokens.end_of_turn,
        },
        "structure": {
            "quantized_linear_modules": record["quantized_linear_modules"],
            "unquantized_modules": record["unquantized_modules"],
            "target_modules": list(config.lora.target_modules),
            "footprint_loaded_bytes": footprint_loaded,
            "footprint_adapted_bytes": footprint_adapted,
            "trainable_parameters": trainable,
            "total_parameters": total,
            "requires_grad_before_trainer": requires_grad_before,
            "requires_grad_after_trainer": requires_grad_after,
            "predicted": prediction.as_dict(),
            "predicted_quantized_modules": list(prediction.quantized_modules),
        },
        "training": {
            "sft_config_adaptations": trainer.harness_adaptations,
            "train_batch_size": trainer._train_batch_size,
            "packed_rows": packed_rows,
            "templated_tokens": templated_tokens,
            "train_examples": len(split.train),
        },
    }
    files = {"collated_batch.json": _batch_record(batch, tokenizer),
             "completion_only_batch.json": completion_batch,
             "template.json": _template_record(tokenizer, config)}
    live = LiveObjects(checkpoint=checkpoint, tokenizer=tokenizer, peft_model=peft_model, trainer=trainer, split=split)
    return Prepared(manifest, files, live, quantized_model, _lora_b_abs_sum(peft_model), phase)


def _train_and_score(prepared: Prepared, config: RecipeConfig, out: Path | None, state) -> dict | None:
    """Recipe steps 5-7 from the prepared stage: train, save, reload, generate, score; the full manifest."""
    import copy

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
        reloaded = reload_tuned_model(live.checkpoint, adapter_dir, config)
        tuned = generate(reloaded, tokenizer, sentences, config)
        del reloaded
    with phase("score"):
        scores = metrics.quality_scores(split.eval, base, tuned, split.columns)
    generations = {"base": base, "tuned": tuned, "tuned_in_memory": tuned_in_memory}
    for which, rows in generations.items():
        prepared.files[f"generations_{which}.jsonl"] = [dict(g.as_dict(), **split.columns.reference_record(row))
                                                        for g, row in zip(rows, split.eval)]
    manifest = copy.deepcopy(prepared.manifest)
    manifest.update(stage="trained", created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    phase_seconds=phase.seconds, adapter=_adapter_record(adapter_dir, adapter_files),
                    metrics=scores)
    manifest["training"].update({
        "global_step": trainer.state.global_step,
        "loss_history": [{"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e],
        "train_loss": train_metrics.get("train_loss"),
        "train_runtime": train_metrics.get("train_runtime"),
        "lora_b_abs_sum_before": prepared.lora_b_before,
        "lora_b_abs_sum_after": lora_b_after,
        "peak_gpu_allocated_bytes": peak_gpu,
        "peak_rss_bytes": _peak_rss(),
    })
    return manifest


# ------------------------------------------------------------------ helpers
def _conversion_tokens(checkpoint: Checkpoint) -> dict | None:
    record = checkpoint.path / CONVERSION_RECORD
    return artifacts.read_json(record).get("tokens_as_read") if record.is_file() else None


def _facts_record(facts) -> dict:
    return {"eos": facts.eos, "bos": facts.bos, "unk": facts.unk, "pad_as_shipped": facts.pad_as_shipped,
            "ids": dict(facts.ids)}


def _template_ids(tokenizer, messages, add_generation_prompt: bool = False) -> list[int]:
    return compat.template_ids(tokenizer, messages, add_generation_prompt)


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


def _adapter_record(adapter_dir: Path, files: list[str]) -> dict:
    weights = adapter_dir / "adapter_model.safetensors"
    record = {"files": files, "safetensors_bytes": None, "safetensors_data_bytes": None}
    if weights.exists():
        summary = artifacts.safetensors_summary(weights)
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


def _progress(message: str) -> None:
    progress.say(message)
