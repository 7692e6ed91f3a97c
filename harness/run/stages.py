"""The run's stages around the recipe: the cache protocol, the distributed protocol, publishing.

    prepare(...) -> the prepared stage (everything before the first optimizer step), reused or made
    run(...)     -> the trained run, continuing from this session's prepared stage when it has one

A stage's inputs (config, libraries, device, model identity, the data loaded, the harness's own
source) make its cache key; a stage is written to a staging directory and renamed into place only
when complete, and a published directory is never written again. Under `torchrun` / `accelerate
launch` rank 0 alone decides reuse and publishes. What each phase does is `harness/recipe/qlora_sft.py`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import env, files
from harness.recipe import compat, libwarnings, qlora_sft
from harness.recipe.config import RecipeConfig
from harness.recipe.data import YodaSplit
from harness.recipe.profiles import ModelOptions, Profile
from harness.recipe.record import PreparedRun, RunRecord, TrainedRun, load
from harness.run import artifacts

# A run has two stages, each cached and published on its own: *prepared* (steps 1-5 up to the
# first optimizer step: what the structural checks read, in seconds) and *trained* (train, save,
# reload, generate, score). The prepared stage of run KEY is published as KEY-prepared; the
# trained run KEY holds every prepared record too, so a run directory stays whole.
PREPARED = "-prepared"


@dataclass
class Run:
    directory: Path
    record: RunRecord
    reused: bool = False
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, directory: Path, reused: bool = True) -> "Run":
        """The run a directory holds, its `run.json` read as the current record (older shapes migrated)."""
        return cls(directory, read_record(directory), reused=reused)

    @property
    def profile(self) -> str:
        return self.record.profile

    def artifact(self, name: str) -> Any:
        if name not in self._cache:
            path = self.directory / name
            self._cache[name] = files.read_jsonl(path) if name.endswith(".jsonl") else files.read_json(path)
        return self._cache[name]

    def generations(self, which: str = "tuned") -> list[dict]:
        return self.artifact(f"generations_{which}.jsonl")


@dataclass(frozen=True)
class RunInputs:
    """Everything a run's result depends on, and the cache key made of it."""

    key: str
    environment: env.Environment
    data_identity: str
    harness_source: str
    # The data as loaded and validated: the prepared stage trains on these rows instead of reading them again.
    split: YodaSplit = field(compare=False, repr=False)


def run_inputs(profile: Profile, options: ModelOptions, config: RecipeConfig, processes: int = 1) -> RunInputs:
    """The inputs of a run of `profile` with `config`, computed without running anything.

    The data is keyed by what is actually loaded (the hub's rows when the hub answers, else the
    bundled copy), the model by its content or revision, the harness by its own source.
    """
    # The number of processes is part of the inputs: 2 processes halve the optimizer steps.
    environment = env.Environment.here(processes)
    split = qlora_sft.load_data(config)
    identity = split.content_digest()
    source = env.harness_source_digest()
    key = artifacts.cache_key(profile.name, config.to_dict(), environment.as_dict(), profile.identity(options),
                              identity, source)
    return RunInputs(key, environment, identity, source, split)


def describe_cached(runs_dir: Path, key: str, structural_only: bool = False) -> str:
    """What a session is about to do: reuse which finished run (or prepared stage), or run the recipe."""
    def reuse(directory: Path, what: str) -> str:
        record = read_record(directory)
        revision = env.describe_revision(record.harness or {"source": "?"})
        return f"reusing {what} {directory} from {record.created} (harness {revision})"

    trained, prepared = artifacts.finished_run(runs_dir, key), artifacts.finished_run(runs_dir, key + PREPARED)
    if trained is not None:
        return reuse(trained, "run")
    if prepared is not None:
        return reuse(prepared, "prepared stage") + ("" if structural_only else "; then training")
    if structural_only:
        return f"preparing the recipe (structural checks only: nothing trains; no finished stage {key} in {runs_dir})"
    return f"running the recipe (no finished run {key} in {runs_dir})"


def prepare(profile: Profile, options: ModelOptions, runs_dir: Path, fresh: bool = False,
            config: RecipeConfig | None = None, session: str | None = None,
            inputs: RunInputs | None = None) -> tuple[Run, qlora_sft.Prepared | None]:
    """The prepared stage for these inputs: everything the recipe builds before its first optimizer step.

    Reused from `runs_dir` (its own directory, or a finished trained run, which holds every prepared
    record too), or made and published now; a new one is also returned in memory, so that training in
    the same session continues from it instead of loading the model again. `inputs` are `config`'s,
    when the caller has them already (the pytest plugin works them out once per session).
    """
    config = config or profile.recipe_config()
    inputs = inputs or run_inputs(profile, options, config)
    with artifacts.run_lock(runs_dir, inputs.key + PREPARED):
        for key in (inputs.key, inputs.key + PREPARED):
            existing = _reusable_run(runs_dir, key, fresh, session)
            if existing is not None:
                qlora_sft.progress_line(f"reusing the prepared records of {existing}")
                return Run.load(existing), None
        with compat.recording() as adaptations, libwarnings.recording(config) as library_warnings:
            prepared = qlora_sft.prepare_stage(profile, options, config, inputs, _process_state())
        # Training in this session continues from this record: it keeps the session and what was recorded.
        prepared.record = replace(_with_adaptations(prepared.record, adaptations, library_warnings), session=session)
        published = _publish(runs_dir, inputs.key + PREPARED, prepared.record, prepared.files)
    return published, prepared


def run(profile: Profile, options: ModelOptions, runs_dir: Path, fresh: bool = False,
        config: RecipeConfig | None = None, session: str | None = None,
        prepared: qlora_sft.Prepared | None = None, inputs: RunInputs | None = None) -> Run | None:
    """The finished (trained) run for these inputs: reused from `runs_dir`, or made now.

    `prepared` is this session's prepared stage in memory, if it made one: training continues from
    it. `inputs` are `config`'s in one process, when the caller has them already. `session` identifies the caller's session (the pytest plugin passes one token shared by all
    its xdist workers) and is recorded in the run: with `fresh`, a run this session already made
    is reused, not made again.

    Under `torchrun` / `accelerate launch` every process calls this. The main process (rank 0)
    alone takes the lock, decides reuse, builds the checkpoint first, and after training saves,
    generates, scores and publishes the run, which it returns; the other ranks train with it
    (the Trainer wraps the model in DDP) and return None: they write nothing.
    """
    config = config or profile.recipe_config()
    state = _process_state()
    if inputs is None or inputs.environment.processes != state.num_processes:
        inputs = run_inputs(profile, options, config, state.num_processes)
    key = inputs.key
    # Only rank 0 takes the lock: a rank blocked on it would never reach the Trainer's collectives.
    lock = artifacts.run_lock(runs_dir, key) if state.is_main_process else contextlib.nullcontext()
    with lock:
        existing, staging = _reuse_or_stage(state, runs_dir, key, fresh, session)
        if existing is not None:
            qlora_sft.progress_line(f"reusing finished run {existing}")
            if not state.is_main_process:
                return None
            return Run.load(existing)
        try:
            with compat.recording() as adaptations, libwarnings.recording(config) as library_warnings:
                if prepared is None or prepared.consumed or prepared.record.key != key:
                    prepared = qlora_sft.prepare_stage(profile, options, config, inputs, state)
                prepared.consumed = True
                trained = qlora_sft.train_and_score(prepared, config, staging, state)
            if not state.is_main_process:
                return None
            trained = _with_adaptations(trained, adaptations, library_warnings)
            trained = replace(_with_published_preparation_warnings(trained, runs_dir, key), session=session)
            published = _publish(runs_dir, key, trained, prepared.files, staging)
        except BaseException:
            import shutil

            if state.is_main_process and staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise
    return published


def prepare_live(profile: Profile, options: ModelOptions, config: RecipeConfig,
                 inputs: RunInputs | None = None) -> qlora_sft.LiveObjects:
    """Live objects of the prepared stage (tokenizer, model with fresh adapters, trainer built, not trained),
    made in a temporary directory: what the live checks use when the session holds none."""
    inputs = inputs or run_inputs(profile, options, config)
    return qlora_sft.prepare_stage(profile, options, config, inputs, _process_state()).live


def read_record(directory: Path) -> RunRecord:
    """The record of a run directory's `run.json`, migrated to the current schema."""
    return load(files.read_json(directory / artifacts.MANIFEST))


def _with_adaptations(record: RunRecord, adaptations, library_warnings: list) -> RunRecord:
    """Every release difference the harness adapted, and every deprecation the libraries announced:
    what an upgrade will break next (a trained run adds its own to its prepared stage's)."""
    return replace(record, compat=record.compat + [adaptation.recorded() for adaptation in adaptations],
                   library_warnings=record.library_warnings + list(library_warnings))


def _with_published_preparation_warnings(record: TrainedRun, runs_dir: Path, key: str) -> TrainedRun:
    """A library warns once per process, many on import. When this session reused the published
    prepared stage, the imports happened outside any recording (in the live checks), so the
    warnings that stage recorded are added here: the trained run's list must not depend on the
    path the session took (measured: torch's `torch.jit.script_method` deprecation went missing
    from a recording that reused its prepared stage, and a fresh run then reported it as new)."""
    published = artifacts.finished_run(runs_dir, key + PREPARED)
    if published is None:
        return record
    recorded = read_record(published).library_warnings
    return replace(record, library_warnings=record.library_warnings
                   + libwarnings.new_warnings(recorded, record.library_warnings))


def _publish(runs_dir: Path, key: str, record: PreparedRun, records: dict[str, Any],
             staging: Path | None = None) -> Run:
    """Write a stage's records (the run record last, complete) into its staging directory and rename it
    into place; the published run, its record as a later session reads it back."""
    staging = staging or artifacts.staging_dir(runs_dir, key)
    written = replace(record, status=artifacts.COMPLETE).to_json()
    try:
        published = load(written)  # a field the recipe filled with the wrong type fails here, before publishing
        for name, payload in records.items():
            writer = files.write_jsonl if name.endswith(".jsonl") else files.write_json
            writer(staging / name, payload)
        files.write_json(staging / artifacts.MANIFEST, written)
        return Run(artifacts.publish(staging, runs_dir, key), published)
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise


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
    if session is not None and read_record(existing).session == session:
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
