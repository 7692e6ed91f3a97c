"""The run record: what a run measured, typed, versioned, and written to its directory as `run.json`.

    PreparedRun  the prepared stage (recipe steps 1-5, up to the first optimizer step): what the
                 structural checks read
    TrainedRun   a PreparedRun plus what training, saving, reloading and scoring measured

`qlora_sft.prepare_stage` and `train_and_score` build them, `harness.run.stages` adds the run's own
facts (session, the libraries' adaptations and warnings) and writes them; the suites, baselines,
report, CLI and version tools read their attributes. `load` is the one way a `run.json` is read:
it migrates an older shape (`migrate`) and validates it.

Frozen dataclasses, not pydantic models: pydantic is no dependency of the harness (the pinned set
has it only through transformers 5's `typer`; the version matrix's older sets have none), and a
regression harness should not add a library to every set it installs. The checks pydantic would
make are made here, in `from_json` (about fifty lines): every field of the declared type, none
missing, none unknown, the error naming the field's path. A record is a measurement: frozen,
`dataclasses.replace` makes a new one.

Payloads that belong to another module stay plain JSON here, read through that module's own
functions: `config` (`RecipeConfig.to_dict()`, as its
digest is the baseline's input; `recipe_config` reads it typed), `harness` (harness.env's revision).
The sections another module makes are typed beside it: `environment` (harness.env.Environment), `saved` (harness.recipe.deployed.Saved),
`compat` (harness.recipe.compat.RecordedAdaptation), `library_warnings`
(harness.recipe.libwarnings.LibraryWarning).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from harness.recipe.config import RecipeConfig
from harness.recipe.data import SECONDARY_REFERENCE, Columns
from harness.env import Environment
from harness.recipe.compat import RecordedAdaptation
from harness.recipe.deployed import Saved
from harness.recipe.libwarnings import LibraryWarning
from harness.recipe.metrics import MB
from harness.recipe.reload import DEPLOYED_FILE

# 2: the typed record (this module). 1: run.json as a dict literal, before it had a version.
SCHEMA_VERSION = 2


class RecordError(ValueError):
    """A run.json that is not a record of this schema; the message names the field."""


section = dataclass(frozen=True, kw_only=True)


def to_json(value: Any) -> Any:
    """A record (or any part of it) as JSON values, as `run.json` holds it."""
    if dataclasses.is_dataclass(value):
        dumped = {item.name: to_json(getattr(value, item.name)) for item in dataclasses.fields(value)}
        return value.spread(dumped) if hasattr(value, "spread") else dumped
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value


def from_json(kind: Any, value: Any, where: str = "run.json") -> Any:
    """`value` (JSON) read as `kind`: a section dataclass, a list, dict, union or literal of them, or a
    JSON scalar; a value of another shape is a RecordError naming `where`."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = []
        for option in (arg for arg in args if arg is not type(None)):
            try:
                return from_json(option, value, where)
            except RecordError as problem:
                problems.append(str(problem))
        raise RecordError(" or ".join(problems))
    if origin is Literal:
        return _expect(value in args, value, where, " or ".join(map(repr, args)))
    if origin is list:
        _expect(isinstance(value, list), value, where, "a list")
        return [from_json(args[0], item, f"{where}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        _expect(isinstance(value, dict), value, where, "an object")
        return {key: from_json(args[1], item, f"{where}.{key}") for key, item in value.items()}
    if dataclasses.is_dataclass(kind):
        _expect(isinstance(value, dict), value, where, "an object")
        return _section(kind, kind.gather(value) if hasattr(kind, "gather") else value, where)
    if kind is float:  # JSON writes 2.0 as 2.0 but a count as 2: either is a number
        return _expect(isinstance(value, (int, float)) and not isinstance(value, bool), value, where, "a number")
    return _expect(isinstance(value, kind) and (kind is bool or not isinstance(value, bool)), value, where,
                   f"of type {kind.__name__}")


def _section(kind: type, raw: dict, where: str):
    hints = _hints(kind)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)}")
    values = {}
    for item in dataclasses.fields(kind):
        if item.name in raw:
            values[item.name] = from_json(hints[item.name], raw[item.name], f"{where}.{item.name}")
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            raise RecordError(f"{where}.{item.name}: missing")
    return kind(**values)


def extended(part: Any, kind: type, **more: Any) -> Any:
    """`part`'s fields and `more` as a `kind` (a subclass of `part`'s type: the trained stage's
    section made of the prepared stage's)."""
    return kind(**{item.name: getattr(part, item.name) for item in dataclasses.fields(part)} | more)


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _expect(ok: bool, value: Any, where: str, expected: str) -> Any:
    if not ok:
        raise RecordError(f"{where}: {value!r:.80} is not {expected}")
    return value


# ------------------------------------------------------------------ sections
@section
class DataSummary:
    """The split the run used (`harness.recipe.data.YodaSplit.summary`) and its content digest."""

    source: str
    train_rows: int
    eval_rows: int
    train_fingerprint: str
    eval_fingerprint: str
    content_digest: str | None = None  # runs recorded before the data was keyed by its content


@section
class TokensAsRead:
    """The special tokens exactly as the libraries read them (`harness.recipe.models.tokens_as_read`)."""

    eos: str | None
    bos: str | None
    unk: str | None
    pad: str | None
    ids: dict[str, int | None]
    read_by: dict[str, str | None]


@section
class TokenFacts:
    """The model family's special-token facts (`harness.recipe.models.SpecialTokens`)."""

    eos: str | None
    bos: str | None
    unk: str | None
    pad_as_shipped: str | None
    ids: dict[str, int]


@section
class AsShipped:
    pad: str | None
    eos: str | None


@section
class Correction:
    """A special token the harness had to set when it built the checkpoint (`harness.recipe.models`)."""

    token: str
    read: str | None
    set_to: str | None
    read_by: dict[str, str | None]


@section
class Tokens:
    as_read: TokensAsRead | None = None  # None: recorded before the harness kept what was read
    corrections: list[Correction]
    facts: TokenFacts | None = None
    as_shipped: AsShipped
    pad: str | None
    pad_id: int | None
    eos: str | None
    eos_id: int | None
    role_markers: list[str]
    end_of_turn: str | None

    def roles_as_read(self) -> list[tuple[str, str | None, str | None]]:
        """(role, as read, the family's fact) for the eos, bos, unk and shipped pad tokens."""
        read, facts = self.as_read, self.facts
        return [("eos", read.eos, facts.eos), ("bos", read.bos, facts.bos), ("unk", read.unk, facts.unk),
                ("pad", read.pad, facts.pad_as_shipped)]


@section
class Prediction:
    """`harness.recipe.metrics.StructurePrediction.as_dict`: the structure predicted from the configs."""

    quantized_modules: int
    lora_modules: int
    footprint_loaded_bytes: int
    footprint_adapted_bytes: int
    trainable_parameters: int
    total_parameters: int
    adapter_bytes: int


@section
class Structure:
    quantized_linear_modules: list[str]
    unquantized_modules: dict[str, str]
    target_modules: list[str]
    footprint_loaded_bytes: int
    footprint_adapted_bytes: int
    trainable_parameters: int
    total_parameters: int
    requires_grad_before_trainer: list[str]
    requires_grad_after_trainer: list[str]
    lora_scaling: dict[str, float] | None = None  # None: recorded before the harness read the scaling
    predicted: Prediction
    predicted_quantized_modules: list[str]


@section
class PreparedTraining:
    """The trainer as built, before its first optimizer step."""

    sft_config_adaptations: list[str]
    train_batch_size: int
    packed_rows: int
    templated_tokens: int
    # What this trl's packing adds between the examples (harness.recipe.compat), counted in the
    # step count wrapped packing implies.
    packing_added_tokens: int
    # The rows this trl's wrapped packing cuts those tokens into (harness.recipe.compat.Packing:
    # groups of examples, shorter rows kept or dropped): the step count follows from it.
    packed_rows_predicted: int
    train_examples: int


@section
class LossPoint:
    step: int
    loss: float


@section
class TrainedTraining(PreparedTraining):
    global_step: int
    loss_history: list[LossPoint]
    train_loss: float | None
    train_runtime: float | None
    lora_b_abs_sum_before: float
    lora_b_abs_sum_after: float
    peak_gpu_allocated_bytes: int | None
    peak_rss_bytes: int


@section
class Precision:
    """The dtypes a model computes in (`harness.recipe.reload.precision`)."""

    adapter: list[str]
    unquantized: list[str]


@section
class Reload:
    """The reloaded adapter against the trained one (harness/recipe/reload.py)."""

    trained_precision: Precision
    deployed_precision: Precision
    agreement_file: str
    agreement_because: list[str]
    tensors: int
    missing: list[str]
    differing_max_abs: dict[str, float]
    scaling_differs: dict[str, list[float | None]]


@section
class Adapter:
    """The saved adapter folder: its files, and the safetensors header's counts when it was written."""

    files: list[str]
    safetensors_bytes: int | None
    safetensors_data_bytes: int | None
    tensor_parameters: int | None = None
    dtypes: list[str] | None = None
    tensors: int | None = None
    reload: Reload | None = None  # None: recorded before the harness compared the reloaded weights


@section
class Signatures:
    """sacrebleu's signature of each score: what makes it reproducible."""

    bleu: str
    chrf: str
    ter: str

    def by_metric(self) -> dict[str, str]:
        return {"bleu": self.bleu, "chrf": self.chrf, "ter": self.ter}


@section
class CorpusScores:
    """sacrebleu's corpus scores against one reference column, and their signatures."""

    bleu: float
    chrf: float
    ter: float
    signatures: Signatures


@section
class GenerationScores:
    """One model's generations scored (`harness.recipe.metrics.quality_scores`).

    The corpus scores are recorded per reference column, under `vs_<column>`; here they are
    `versus`, keyed the same way (`Columns.target_key`, `Columns.secondary_key`).
    """

    versus: dict[str, CorpusScores]
    stop_rate: float
    non_empty_stop_rate: float
    empty_rate: float
    mean_new_tokens: float
    mean_words: float
    sentence_bleu: list[float]

    @staticmethod
    def gather(raw: dict) -> dict:
        """The JSON's `vs_<column>` scores gathered under `versus` (`from_json` reads it so)."""
        versus = {key: value for key, value in raw.items() if key.startswith("vs_")}
        return dict({key: value for key, value in raw.items() if key not in versus}, versus=versus)

    @staticmethod
    def spread(dumped: dict) -> dict:
        """`versus` spread back into `vs_<column>` keys (`to_json` writes it so)."""
        return dict({key: value for key, value in dumped.items() if key != "versus"}, **dumped["versus"])


@section
class Metrics:
    base: GenerationScores
    tuned: GenerationScores
    eval_rows: int
    reference_mean_words: float


# ------------------------------------------------------------------ the record
@section
class PreparedRun:
    """The prepared stage's record; the trained stage's (`TrainedRun`) holds all of it too."""

    schema_version: Literal[2] = SCHEMA_VERSION
    stage: Literal["prepared"] = "prepared"
    status: str | None = None  # "complete" once published (harness.run.artifacts)
    key: str
    profile: str
    profile_kind: str
    profile_file: str | None = None
    # The published figures this profile must reproduce (the report compares them too).
    reference: dict[str, int | float]  # as the profile's TOML has them: a count stays an int
    skips: dict[str, str]
    thresholds: dict[str, int | float]
    model: str
    # By content or revision (a GGUF's sha256, a hub snapshot's commit): what a baseline refuses on.
    model_identity: str | None = None
    created: str
    config: dict[str, Any]
    environment: Environment
    version_set: str
    harness: dict[str, Any] | None = None
    phase_seconds: dict[str, float]
    data: DataSummary
    tokens: Tokens
    structure: Structure
    training: PreparedTraining
    session: str | None = None
    compat: list[RecordedAdaptation] = field(default_factory=list)
    library_warnings: list[LibraryWarning] = field(default_factory=list)

    @property
    def trained(self) -> bool:
        return self.stage == "trained"

    @functools.cached_property
    def recipe_config(self) -> RecipeConfig:
        """The recorded config, typed (a section recorded before it existed reads as its default)."""
        return RecipeConfig.from_dict(self.config)

    @property
    def columns(self) -> Columns:
        """The data columns the run read and scored against."""
        return Columns.of(self.recipe_config.data)

    @property
    def processes(self) -> int:
        """How many processes trained (torchrun / accelerate launch): each takes one batch per step."""
        return self.environment.processes

    def to_json(self) -> dict:
        """The record as `run.json` holds it."""
        return to_json(self)

    def measure(self, template: dict | None = None) -> tuple[dict[str, Any], dict[str, str]]:
        """({metric: value or None} of every metric this stage measures for the baseline comparison,
        {metric: why it is None}); harness.checks.baselines.POLICY says how each is judged."""
        return self._model_figures(template), {}

    def unmeasured(self, name: str) -> str:
        """Why this stage has no `name` at all."""
        return f"the prepared stage does not measure {name} (the trained stage does)"

    def _model_figures(self, template: dict | None) -> dict[str, Any]:
        """What the model alone decides: footprints, parameter counts, the rendered template, the tokens."""
        return {
            "footprint_loaded_mb": round(self.structure.footprint_loaded_bytes / MB, 6),
            "footprint_adapted_mb": round(self.structure.footprint_adapted_bytes / MB, 6),
            "trainable_parameters": self.structure.trainable_parameters,
            "total_parameters": self.structure.total_parameters,
            "template_rendered": template["rendered"] if template is not None else None,
            "tokens_as_read": tokens_value(self.tokens.as_read),
        }


@section
class TrainedRun(PreparedRun):
    """The whole run: the prepared stage's record and what training, saving and scoring measured."""

    stage: Literal["trained"] = "trained"
    training: TrainedTraining
    adapter: Adapter
    saved: Saved | None = None  # None: recorded before the harness read the saved folder back
    metrics: Metrics

    def measure(self, template: dict | None = None) -> tuple[dict[str, Any], dict[str, str]]:
        training, tuned, base = self.training, self.metrics.tuned, self.metrics.base
        losses = [point.loss for point in training.loss_history]
        # Scores are recorded under the run's reference columns (vs_translation_extra, vs_translation
        # for the recipe's data); the second reference only when the run's data had it.
        columns = self.columns
        versus = tuned.versus[columns.target_key]
        plain = tuned.versus.get(columns.secondary_key) if columns.secondary_key else None
        peak = training.peak_gpu_allocated_bytes
        values = dict(self._model_figures(template), **{
            "global_step": training.global_step,
            "packed_rows": training.packed_rows,
            "adapter_data_bytes": self.adapter.safetensors_data_bytes,
            "adapter_dtype": ",".join(self.adapter.dtypes or []) or None,
            "bleu_signature": versus.signatures.bleu,
            "chrf_signature": versus.signatures.chrf,
            "ter_signature": versus.signatures.ter,
            "peak_gpu_allocated_mb": round(peak / MB, 3) if peak else None,
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
            "train_loss": training.train_loss,
            "bleu": versus.bleu,
            "bleu_plain": plain.bleu if plain else None,
            "chrf": versus.chrf,
            "ter": versus.ter,
            "stop_rate": tuned.stop_rate,
            "non_empty_stop_rate": tuned.non_empty_stop_rate,
            "mean_new_tokens": tuned.mean_new_tokens,
            "mean_words": tuned.mean_words,
            "base_bleu": base.versus[columns.target_key].bleu,
            "base_stop_rate": base.stop_rate,
        })
        return values, {
            "template_rendered": "the run's template.json was not read",
            "tokens_as_read": "this run's manifest has no tokens.as_read (made before the harness recorded it)",
            "peak_gpu_allocated_mb": "no GPU memory was measured (a CPU run)",
            "loss_first": "no loss was logged",
            "loss_last": "no loss was logged",
            "adapter_dtype": "the adapter record names no dtype",
            "bleu_plain": f"this run scored no second reference (its data has no {SECONDARY_REFERENCE!r} column "
                          "besides the source and target)",
        }

    def unmeasured(self, name: str) -> str:
        return f"this run did not record {name}"


RunRecord = Union[PreparedRun, TrainedRun]


def tokens_value(as_read: TokensAsRead | dict | str | None) -> str | None:
    """The tokens as read, as compared: the special tokens and their ids, without the libraries
    that read them (`read_by`). Those differ on every upgrade and are the entry's package
    difference already; in the value they made the tokens CHANGED under the October-2025 set
    although every token and id was the same."""
    if as_read is None:
        return None
    if isinstance(as_read, TokensAsRead):
        as_read = to_json(as_read)
    tokens = json.loads(as_read) if isinstance(as_read, str) else dict(as_read)
    tokens.pop("read_by", None)
    return json.dumps(tokens, sort_keys=True)


# ------------------------------------------------------------------ reading
def load(raw: dict) -> RunRecord:
    """The record a `run.json` holds, migrated to this schema and checked field by field (RecordError)."""
    if not isinstance(raw, dict):
        raise RecordError(f"run.json: {raw!r:.80} is not an object")
    try:
        record = migrate(raw)
    except (KeyError, TypeError, AttributeError) as error:
        raise RecordError(f"run.json: not a record of schema 1 ({error!r})") from None
    stage = from_json(Literal["prepared", "trained"], record.get("stage"), "run.json.stage")
    return from_json(TrainedRun if stage == "trained" else PreparedRun, record)


def migrate(raw: dict) -> dict:
    """A `run.json` of schema 1 (no `schema_version`) in this schema's shape; a current one as it is.

    Schema 1 grew field by field; each absent field reads as its readers read its absence: no stage
    was a trained run, no process count was one, no compat / warnings / corrections were none, no packing separators were
    none, the profile's reference, skips and thresholds were its built-in profile's, the packed
    rows were predicted as one group with every row kept, and an agreement file other than the
    deployed generations was made for the precision alone (before 2026-12-06).
    """
    if raw.get("schema_version", 1) == SCHEMA_VERSION:
        return raw
    record = json.loads(json.dumps(raw))
    record.update(schema_version=SCHEMA_VERSION, stage=record.get("stage", "trained"))
    for field_ in ("compat", "library_warnings"):
        record.setdefault(field_, [])
    record["environment"].setdefault("processes", 1)
    record["tokens"].setdefault("corrections", [])
    training = record["training"]
    training.setdefault("packing_added_tokens", 0)
    max_length = record["config"]["training"]["max_length"]
    training.setdefault("packed_rows_predicted",
                        -(-(training["templated_tokens"] + training["packing_added_tokens"]) // max_length))
    reloaded = record.get("adapter", {}).get("reload")
    if reloaded is not None:
        reloaded.setdefault("agreement_because", ["precision"] if reloaded["agreement_file"] != DEPLOYED_FILE else [])
    if not {"reference", "skips", "thresholds"} <= set(record):
        from harness.recipe.profiles import PROFILES  # on demand: the profiles import the model definitions

        found = PROFILES.get(record.get("profile") or "")
        for field_ in ("reference", "skips", "thresholds"):
            record.setdefault(field_, dict(getattr(found, field_)) if found else {})
    return record
