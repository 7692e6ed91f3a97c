"""Profiles: which model a run uses, how the recipe config is adjusted for it, and where it can run.

A profile is a TOML file (docs/profiles.md has the schema). The built-in ones are files too,
shipped in `harness/recipe/profiles/builtin/`: `tiny`, `smollm2`, `phi3`, `phi3-shape`. `--yoda-profile`
takes a built-in name or a path to a file; a file may start from another profile with
`extends = "tiny"` (a name or a path relative to the file). No code branches on a profile's
name: what differs between profiles is data of the profile (its model source, the family's
special tokens, overrides, where it can run, the published figures it reproduces).

`auto` picks the strongest built-in profile this machine can run (the lowest `auto_rank`): the
real Phi-3 when its weights and a GPU are here, SmolLM2 when a GPU and its GGUF are here, else
the CPU-sized `tiny`; it says which it chose and why each stronger one could not run. A profile
named explicitly that cannot run here is the caller's error (the plugin makes it a usage error),
never a session of skips.

A profile says what each stage of a run needs (`[needs]`: `prepared`, `trained`; `any` or `gpu`):
SmolLM2's and Phi-3's prepared stage (everything before the first optimizer step, what the
structural checks read) runs on a CPU, their training needs a GPU. A session is refused only for
the stages its checks need: `-m yoda_structural` needs the prepared stage alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from harness import env, markers
from harness.env import CpuKernels
from harness.recipe.config import RecipeConfig
from harness.recipe.models import Checkpoint, SpecialTokens, sources
from harness.recipe.models import phi3 as phi3_models
from harness.recipe.models import smollm2 as smollm2_models
from harness.recipe.models import tiny as tiny_models
from harness.recipe.models.sources import ModelOptions, ModelSpec

__all__ = ["ModelOptions", "Profile", "PROFILES", "ProfileError", "UnknownProfile", "load_profile", "resolve",
           "choose_auto", "auto_choice", "why_not_runnable", "STAGES", "NEEDS"]

BUILTIN_DIR = "builtin"
KINDS = ("full", "structural")
# Special-token facts of the model families the built-in profiles use; a profile file may give its
# own instead, as a [model.tokens] table with the same fields.
FAMILIES: dict[str, SpecialTokens] = {
    "phi3": phi3_models.PHI3_SPECIAL_TOKENS,
    "smollm2": smollm2_models.SMOLLM2_SPECIAL_TOKENS,
}
# Tables an extending file merges key by key into its parent's; `model` it replaces whole.
MERGED_TABLES = ("recipe", "skips", "reference", "thresholds", "cpu", "needs")
# `requires_gpu` is the schema's older spelling of [needs] (true: every stage needs a GPU).
TOP_LEVEL_KEYS = {"name", "description", "extends", "kind", "requires_gpu", "auto_rank", "model", *MERGED_TABLES}

# A run's stages, in order (harness.run.stages): the prepared stage is everything before the first
# optimizer step (what the `yoda_structural` checks read); the trained stage trains, saves, reloads,
# generates and scores.
STAGES = ("prepared", "trained")
# What a stage may need, in its profile's [needs] table: any device, or a CUDA GPU.
NEEDS = ("any", "gpu")


# The checks' bounds a profile sets in its [thresholds] table (the suites ask for them by name).
THRESHOLDS = {
    "min_bleu_gain": "tuned minus base BLEU, at least (test_bleu.py)",
    "min_stop_rate": "share of non-empty outputs ending on EOS, at least (test_stopping.py)",
    "max_leak_rate": "share of outputs running on into a next turn, at most (test_stopping.py)",
    "length_band": "mean output length within this fraction of the references' (test_stopping.py)",
    "min_loss_drop": "first to last logged loss, relative drop at least (test_training.py)",
    "min_reload_agreement": "base + reloaded adapter reproducing the trained model, share at least (test_training.py)",
}


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and the field."""


class UnknownProfile(ProfileError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    model: ModelSpec
    overrides: dict[str, Any] = field(default_factory=dict)
    # What each stage (STAGES) needs: "any" device or a CUDA "gpu" (the profile's [needs] table).
    needs: dict[str, str] = field(default_factory=lambda: {stage: "any" for stage in STAGES})
    # What the profile is for: "full" runs train and score; "structural" ones (random weights
    # at full size) check memory, parameters, labels and template only.
    kind: str = "full"
    # Check categories this profile cannot give meaning to, with the measured reason: those
    # checks are skipped with that reason (never passed) when the profile runs.
    skips: dict[str, str] = field(default_factory=dict)
    # Figures published with the recipe that this profile must reproduce (Phi-3's), by name.
    reference: dict[str, float] = field(default_factory=dict)
    # The checks' bounds, by name (THRESHOLDS): policy set by people, inherited through `extends`.
    thresholds: dict[str, float] = field(default_factory=dict)
    # `auto` tries ranked built-ins, lowest first; None: never chosen by `auto`.
    auto_rank: int | None = None
    # The CPU kernel paths pinned for this profile's runs on a CPU ([cpu] table; env.CpuKernels).
    cpu: CpuKernels = field(default_factory=CpuKernels)
    path: Path | None = None

    @property
    def special_tokens(self) -> SpecialTokens:
        return self.model.tokens

    def needs_gpu(self, stage: str) -> bool:
        return self.needs.get(stage, "any") == "gpu"

    @property
    def requires_gpu(self) -> bool:
        """Some stage needs a CUDA GPU (the whole profile cannot run on a CPU; maybe its prepared stage can)."""
        return any(self.needs_gpu(stage) for stage in STAGES)

    def recipe_config(self) -> RecipeConfig:
        return RecipeConfig().with_overrides(self.overrides)

    def build_checkpoint(self, options: ModelOptions) -> Checkpoint:
        return sources.build(self.model, options)

    def identity(self, options: ModelOptions) -> str:
        """What makes this profile's weights what they are (part of a run's cache key)."""
        return sources.identity(self.model, options)


# ------------------------------------------------------------------ loading
def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name, or a profile file by path (`extends` followed)."""
    raw, path = _read_with_parents(name_or_path, seen=())
    return _profile_from(raw, path)


def _builtin_path(name: str) -> Path | None:
    path = Path(str(resources.files("harness.recipe.profiles").joinpath(BUILTIN_DIR, f"{name}.toml")))
    return path if path.is_file() else None


def _locate(name_or_path: str | Path, relative_to: Path | None) -> Path:
    text = str(name_or_path)
    if not text.endswith(".toml"):
        builtin = _builtin_path(text)
        if builtin is None:
            raise UnknownProfile(f"unknown profile {text!r}; choose one of: auto, {', '.join(builtin_names())}, "
                                 "or a path to a profile file (.toml)")
        return builtin
    path = Path(text)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to.parent / path
    if not path.is_file():
        raise UnknownProfile(f"profile file {path}: no such file")
    return path


def _read_with_parents(name_or_path, seen: tuple[Path, ...], relative_to: Path | None = None) -> tuple[dict, Path]:
    path = _locate(name_or_path, relative_to).resolve()
    if path in seen:
        raise ProfileError(f"{path}: extends: a cycle ({' -> '.join(str(p) for p in (*seen, path))})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"{path}: not valid TOML ({error})") from None
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise ProfileError(f"{path}: {unknown[0]}: unknown key (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    _needs_from_requires_gpu(raw, path)
    if isinstance(raw.get("recipe"), dict):
        raw["recipe"] = _data_path_relative_to(raw["recipe"], path)
    if "extends" not in raw:
        return raw, path
    if "name" not in raw:
        raise ProfileError(f"{path}: name: a profile that extends another needs a name of its own "
                           "(its baselines are kept under that name)")
    parent, _ = _read_with_parents(raw["extends"], (*seen, path), relative_to=path)
    # `auto` chooses among the built-ins by their own rank: a rank is never inherited.
    merged = {key: value for key, value in parent.items() if key not in ("extends", "auto_rank")}
    for key, value in raw.items():
        if key in MERGED_TABLES:
            merged[key] = {**parent.get(key, {}), **_table(value, path, key)}
        elif key != "extends":
            merged[key] = value
    return merged, path


def _needs_from_requires_gpu(raw: dict, path: Path) -> None:
    """The older `requires_gpu = true | false` is `[needs]` with every stage `gpu` | `any`; a file
    giving both is ambiguous and refused, naming the new key."""
    if "requires_gpu" not in raw:
        return
    value = raw.pop("requires_gpu")
    if not isinstance(value, bool):
        raise ProfileError(f"{path}: requires_gpu: expected true or false, got {value!r} (the per-stage [needs] "
                           "table replaces it: prepared = \"any\", trained = \"gpu\")")
    if "needs" in raw:
        raise ProfileError(f"{path}: requires_gpu: given beside [needs], which replaces it; keep [needs] only "
                           "(requires_gpu = true is prepared = \"gpu\", trained = \"gpu\")")
    raw["needs"] = {stage: "gpu" if value else "any" for stage in STAGES}


# `data.source` values that name no file.
DATA_SOURCES = ("hub", "bundled")


def _data_path_relative_to(recipe: dict, path: Path) -> dict:
    """A relative data file in a profile's [recipe] is relative to that profile's file, as `extends`
    is: the profile works from any directory, and a parent's data stays the parent's."""
    source = recipe.get("data.source")
    if not isinstance(source, str) or source in DATA_SOURCES or Path(source).is_absolute():
        return recipe
    return {**recipe, "data.source": str((path.parent / source).resolve())}


def _table(value, path: Path, key: str) -> dict:
    if not isinstance(value, dict):
        raise ProfileError(f"{path}: {key}: expected a table, got {value!r}")
    return value


def _profile_from(raw: dict, path: Path) -> Profile:
    def fail(key: str, problem: str):
        raise ProfileError(f"{path}: {key}: {problem}")

    for key, kind in (("name", str), ("description", str)):
        if not isinstance(raw.get(key), kind):
            fail(key, f"expected text, got {raw.get(key)!r}")
    if raw.get("kind", "full") not in KINDS:
        fail("kind", f"{raw['kind']!r}: expected one of {', '.join(KINDS)}")
    needs = _table(raw.get("needs", {}), path, "needs")
    for stage, need in needs.items():
        if stage not in STAGES:
            fail(f"needs.{stage}", f"unknown stage (known: {', '.join(STAGES)})")
        if need not in NEEDS:
            fail(f"needs.{stage}", f"{need!r}: expected one of {', '.join(map(repr, NEEDS))}")
    needs = {stage: needs.get(stage, "any") for stage in STAGES}
    if needs["prepared"] == "gpu" and needs["trained"] == "any":
        fail("needs", "the trained stage continues from the prepared one: it cannot need less (prepared = \"gpu\", "
                      "trained = \"any\")")
    rank = raw.get("auto_rank")
    if rank is not None and rank is not False and (not isinstance(rank, int) or isinstance(rank, bool)):
        fail("auto_rank", f"expected an integer or false, got {rank!r}")
    overrides = _table(raw.get("recipe", {}), path, "recipe")
    try:
        RecipeConfig().with_overrides(overrides)
    except (ValueError, TypeError) as error:
        fail("recipe", str(error))
    skips = _table(raw.get("skips", {}), path, "skips")
    for category, reason in skips.items():
        if category not in markers.SKIPPABLE:
            fail(f"skips.{category}", f"unknown check category (known: {', '.join(markers.SKIPPABLE)})")
        if not isinstance(reason, str) or not reason:
            fail(f"skips.{category}", "expected the reason, as text")
    reference = _table(raw.get("reference", {}), path, "reference")
    thresholds = _table(raw.get("thresholds", {}), path, "thresholds")
    for name, value in thresholds.items():
        if name not in THRESHOLDS:
            fail(f"thresholds.{name}", f"unknown threshold (known: {', '.join(THRESHOLDS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"thresholds.{name}", f"expected a number, got {value!r}")
    try:
        cpu = CpuKernels.from_table(_table(raw.get("cpu", {}), path, "cpu"), str(path))
    except ValueError as error:
        raise ProfileError(str(error)) from None
    return Profile(name=raw["name"], description=raw["description"], model=_model_spec(raw.get("model"), path),
                   overrides=overrides, needs=needs, kind=raw.get("kind", "full"),
                   skips=skips, reference=reference, thresholds=thresholds, auto_rank=rank if rank is not False else None,
                   cpu=cpu, path=path)


def _model_spec(raw, path: Path) -> ModelSpec:
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: model: expected a [model] table with a source")
    settings = dict(raw)
    source = settings.pop("source", None)
    if source not in sources.SOURCES:
        raise ProfileError(f"{path}: model.source: {source!r}: expected one of {', '.join(sources.SOURCES)}")
    family, tokens = settings.pop("family", None), settings.pop("tokens", None)
    if tokens is not None:
        try:
            facts = SpecialTokens(**{**tokens, "role_markers": tuple(tokens.get("role_markers", ()))})
        except TypeError as error:
            raise ProfileError(f"{path}: model.tokens: {error}") from None
    elif family in FAMILIES:
        facts = FAMILIES[family]
    else:
        raise ProfileError(f"{path}: model.family: {family!r}: expected one of {', '.join(FAMILIES)}, "
                           "or a [model.tokens] table")
    if source == "hub" and not isinstance(settings.get("id"), str):
        raise ProfileError(f"{path}: model.id: a hub source needs the model id")
    if source == "tiny":
        try:
            tiny_models.TinySettings.of(settings)
        except ValueError as error:
            raise ProfileError(f"{path}: model.{error}") from None
    return ModelSpec(source=source, tokens=facts, settings=settings)


def builtin_names() -> list[str]:
    directory = Path(str(resources.files("harness.recipe.profiles").joinpath(BUILTIN_DIR)))
    return sorted(p.stem for p in directory.glob("*.toml"))


PROFILES: dict[str, Profile] = {name: load_profile(name) for name in builtin_names()}


# ------------------------------------------------------------------ choosing one

def resolve(name: str, options: ModelOptions) -> Profile:
    """The profile called `name`, or in the file `name` (`auto` resolved for this machine)."""
    if name == "auto":
        return PROFILES[auto_choice(options)]
    return PROFILES[name] if name in PROFILES else load_profile(name)


@dataclass(frozen=True)
class AutoChoice:
    name: str
    passed_over: dict[str, str]  # stronger profile -> why it cannot run here

    def describe(self) -> str:
        why = "; ".join(f"not {name}: {reason}" for name, reason in self.passed_over.items())
        return f"auto -> {self.name}" + (f" ({why})" if why else "")


def auto_order() -> list[str]:
    """The built-in profiles `auto` tries, strongest (lowest rank) first."""
    ranked = [p for p in PROFILES.values() if p.auto_rank is not None]
    return [p.name for p in sorted(ranked, key=lambda p: p.auto_rank)]


def auto_choice(options: ModelOptions) -> str:
    return choose_auto(options).name


def choose_auto(options: ModelOptions) -> AutoChoice:
    """The strongest profile that can run here, and why each stronger one cannot."""
    passed_over = {}
    for name in auto_order():
        reason = why_not_runnable(PROFILES[name], options, reachability=False)
        if reason is None:
            return AutoChoice(name, passed_over)
        passed_over[name] = reason
    raise UnknownProfile("no profile can run here: " + "; ".join(f"{n}: {r}" for n, r in passed_over.items()))


def why_not_runnable(profile: Profile, options: ModelOptions, reachability: bool = True,
                     stages: tuple[str, ...] = STAGES) -> str | None:
    """None when the profile's `stages` can run here, else the reason (used by `doctor`, `auto` and
    the plugin, which asks only for the stages its session's checks need).

    `reachability=False` counts only weights already on this machine (what `auto` may choose:
    it never picks a profile that would first download 7 GB).
    """
    needing_gpu = [stage for stage in STAGES if stage in stages and profile.needs_gpu(stage)]
    if needing_gpu and not env.gpu_available():
        if needing_gpu == list(STAGES):
            return f"profile {profile.name!r} needs a CUDA GPU and none is visible"
        reason = f"profile {profile.name!r}: its {' and '.join(needing_gpu)} stage needs a CUDA GPU and none is visible"
        if not profile.needs_gpu("prepared") and sources.why_unavailable(profile.model, options, reachability) is None:
            reason += " (its prepared stage runs here: `-m yoda_structural`)"
        return reason
    return sources.why_unavailable(profile.model, options, reachability)
