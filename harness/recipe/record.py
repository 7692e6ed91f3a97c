"""The run record: what a run measured, typed, versioned, and written to its directory as `run.json`.

    PreparedRun  the prepared stage (recipe steps 1-5, up to the first optimizer step): what the
                 structural checks read
    TrainedRun   a PreparedRun plus what training, saving, reloading and scoring measured

`qlora_sft.prepare_stage` and `train_and_score` build them, `harness.run.stages` adds the run's own
facts (session, the libraries' adaptations and warnings) and writes them; the suites, baselines,
report, CLI and version tools read their attributes. `load` is the one way a `run.json` is read:
it migrates an older shape (`migrate`) and validates it.

Pydantic v2 models rather than frozen dataclasses: a record comes back from JSON, and pydantic
validates it on the way in (a renamed or missing field fails where the file is read, naming the
field, not as a KeyError in some suite), builds the nested sections, and dumps to the same JSON.
The models are frozen (a record is a measurement; `model_copy(update=...)` makes a new one) and
forbid unknown fields (a field the record does not declare is a writer's bug).

Payloads that belong to another module stay plain JSON here, read through that module's own
functions: `environment` (harness.env's fingerprint), `config` (`RecipeConfig.to_dict()`, as its
digest is the baseline's input; `recipe_config` reads it typed), `harness` (harness.env's revision),
`saved` (harness.recipe.deployed's record), the compat adaptations and library warnings.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_serializer, model_validator

from harness.recipe.config import RecipeConfig
from harness.recipe.data import SECONDARY_REFERENCE, Columns
from harness.recipe.metrics import MB

# 2: the typed record (this module). 1: run.json as a dict literal, before it had a version.
SCHEMA_VERSION = 2


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ------------------------------------------------------------------ sections
class DataSummary(Section):
    """The split the run used (`harness.recipe.data.YodaSplit.summary`) and its content digest."""

    source: str
    train_rows: int
    eval_rows: int
    train_fingerprint: str
    eval_fingerprint: str
    content_digest: str | None = None  # runs recorded before the data was keyed by its content


class TokensAsRead(Section):
    """The special tokens exactly as the libraries read them (`harness.recipe.models.tokens_as_read`)."""

    eos: str | None
    bos: str | None
    unk: str | None
    pad: str | None
    ids: dict[str, int | None]
    read_by: dict[str, str | None]


class TokenFacts(Section):
    """The model family's special-token facts (`harness.recipe.models.SpecialTokens`)."""

    eos: str | None
    bos: str | None
    unk: str | None
    pad_as_shipped: str | None
    ids: dict[str, int]


class AsShipped(Section):
    pad: str | None
    eos: str | None


class Correction(Section):
    """A special token the harness had to set when it built the checkpoint (`harness.recipe.models`)."""

    token: str
    read: str | None
    set_to: str | None
    read_by: dict[str, str | None]


class Tokens(Section):
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


class Prediction(Section):
    """`harness.recipe.metrics.StructurePrediction.as_dict`: the structure predicted from the configs."""

    quantized_modules: int
    lora_modules: int
    footprint_loaded_bytes: int
    footprint_adapted_bytes: int
    trainable_parameters: int
    total_parameters: int
    adapter_bytes: int


class Structure(Section):
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


class PreparedTraining(Section):
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


class LossPoint(Section):
    step: int
    loss: float


class TrainedTraining(PreparedTraining):
    global_step: int
    loss_history: list[LossPoint]
    train_loss: float | None
    train_runtime: float | None
    lora_b_abs_sum_before: float
    lora_b_abs_sum_after: float
    peak_gpu_allocated_bytes: int | None
    peak_rss_bytes: int


class Precision(Section):
    """The dtypes a model computes in (`harness.recipe.reload.precision`)."""

    adapter: list[str]
    unquantized: list[str]


class Reload(Section):
    """The reloaded adapter against the trained one (harness/recipe/reload.py)."""

    trained_precision: Precision
    deployed_precision: Precision
    agreement_file: str
    agreement_because: list[str]
    tensors: int
    missing: list[str]
    differing_max_abs: dict[str, float]
    scaling_differs: dict[str, list[float | None]]


class Adapter(Section):
    """The saved adapter folder: its files, and the safetensors header's counts when it was written."""

    files: list[str]
    safetensors_bytes: int | None
    safetensors_data_bytes: int | None
    tensor_parameters: int | None = None
    dtypes: list[str] | None = None
    tensors: int | None = None
    reload: Reload | None = None  # None: recorded before the harness compared the reloaded weights


class Signatures(Section):
    """sacrebleu's signature of each score: what makes it reproducible."""

    bleu: str
    chrf: str
    ter: str


class CorpusScores(Section):
    """sacrebleu's corpus scores against one reference column, and their signatures."""

    bleu: float
    chrf: float
    ter: float
    signatures: Signatures


class GenerationScores(Section):
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

    @model_validator(mode="before")
    @classmethod
    def _gather_references(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "versus" in raw:
            return raw
        versus = {key: value for key, value in raw.items() if key.startswith("vs_")}
        return dict({key: value for key, value in raw.items() if key not in versus}, versus=versus)

    @model_serializer(mode="wrap")
    def _spread_references(self, handler) -> dict:
        dumped = handler(self)
        return dict({key: value for key, value in dumped.items() if key != "versus"}, **dumped["versus"])


class Metrics(Section):
    base: GenerationScores
    tuned: GenerationScores
    eval_rows: int
    reference_mean_words: float


# ------------------------------------------------------------------ the record
class PreparedRun(Section):
    """The prepared stage's record; the trained stage's (`TrainedRun`) holds all of it too."""

    schema_version: Literal[2] = SCHEMA_VERSION
    stage: Literal["prepared"] = "prepared"
    status: str | None = None  # "complete" once published (harness.run.artifacts)
    key: str
    profile: str
    profile_kind: str
    profile_file: str | None = None
    # The published figures this profile must reproduce (the report compares them too).
    reference: dict[str, float]
    skips: dict[str, str]
    thresholds: dict[str, float]
    model: str
    # By content or revision (a GGUF's sha256, a hub snapshot's commit): what a baseline refuses on.
    model_identity: str | None = None
    created: str
    config: dict[str, Any]
    environment: dict[str, Any]
    version_set: str
    harness: dict[str, Any] | None = None
    phase_seconds: dict[str, float]
    data: DataSummary
    tokens: Tokens
    structure: Structure
    training: PreparedTraining
    session: str | None = None
    compat: list[dict[str, Any]] = []
    library_warnings: list[dict[str, Any]] = []

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
        return self.environment.get("processes", 1)

    def to_json(self) -> dict:
        """The record as `run.json` holds it."""
        return self.model_dump(mode="json")

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


class TrainedRun(PreparedRun):
    """The whole run: the prepared stage's record and what training, saving and scoring measured."""

    stage: Literal["trained"] = "trained"
    training: TrainedTraining
    adapter: Adapter
    saved: dict[str, Any] | None = None  # None: recorded before the harness read the saved folder back
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


RunRecord = Annotated[Union[PreparedRun, TrainedRun], Field(discriminator="stage")]
_RECORD = TypeAdapter(RunRecord)


def tokens_value(as_read: TokensAsRead | dict | str | None) -> str | None:
    """The tokens as read, as compared: the special tokens and their ids, without the libraries
    that read them (`read_by`). Those differ on every upgrade and are the entry's package
    difference already; in the value they made the tokens CHANGED under the October-2025 set
    although every token and id was the same."""
    if as_read is None:
        return None
    if isinstance(as_read, TokensAsRead):
        as_read = as_read.model_dump(mode="json")
    tokens = json.loads(as_read) if isinstance(as_read, str) else dict(as_read)
    tokens.pop("read_by", None)
    return json.dumps(tokens, sort_keys=True)


# ------------------------------------------------------------------ reading
def load(raw: dict) -> PreparedRun | TrainedRun:
    """The record a `run.json` holds, migrated to this schema and validated."""
    return _RECORD.validate_python(migrate(raw))


def migrate(raw: dict) -> dict:
    """A `run.json` of schema 1 (no `schema_version`) in this schema's shape; a current one as it is.

    Schema 1 grew field by field; each absent field reads as its readers read its absence: no stage
    was a trained run, no compat / warnings / corrections were none, no packing separators were
    none, the profile's reference, skips and thresholds were its built-in profile's, and the packed
    rows were predicted as one group with every row kept.
    """
    if raw.get("schema_version", 1) == SCHEMA_VERSION:
        return raw
    record = json.loads(json.dumps(raw))
    record.update(schema_version=SCHEMA_VERSION, stage=record.get("stage", "trained"))
    for field_ in ("compat", "library_warnings"):
        record.setdefault(field_, [])
    record["tokens"].setdefault("corrections", [])
    training = record["training"]
    training.setdefault("packing_added_tokens", 0)
    max_length = record["config"]["training"]["max_length"]
    training.setdefault("packed_rows_predicted",
                        -(-(training["templated_tokens"] + training["packing_added_tokens"]) // max_length))
    if not {"reference", "skips", "thresholds"} <= set(record):
        from harness.recipe.profiles import PROFILES  # on demand: the profiles import the model definitions

        found = PROFILES.get(record.get("profile") or "")
        for field_ in ("reference", "skips", "thresholds"):
            record.setdefault(field_, dict(getattr(found, field_)) if found else {})
    return record
