"""One plan per pytest session of the suites: what it runs, worked out once.

pytest builds a session's state once and hands it to a plugin object (its cacheprovider's
`Cache.for_config` and `LFPlugin`); the suites' state is built the same way, in two steps:

- at configure time, the options as given (`SessionOptions`): the profile named (or `auto`), the
  recipe config it gives with the variant and the overrides, the model options, the runs and
  baselines directories. A wrong one stops the session there;
- at collection time, once the collected checks say which stages they need, the plan
  (`SessionPlan`): the profile that runs here, its recipe config, and the run's inputs (its cache
  key, with the data loaded and validated once: the prepared stage trains on those rows).

The `Planner`, registered on the plugin manager, holds both, and the baseline comparison, also made
once: the fixtures and hooks of harness.checks.plugin read them from it. Every input error found
while planning (a profile, an option, a data row, a model file) is a usage error naming it: one
line, exit 4, never an INTERNALERROR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness import env
from harness.checks import baselines as baseline_store
from harness.recipe import profiles as profile_registry
from harness.recipe.config import RecipeConfig
from harness.recipe.data import DataError
from harness.recipe.models import ModelInputError, ModelUnavailable
from harness.recipe.profiles import ModelOptions, Profile
from harness.run import options

if TYPE_CHECKING:
    from harness.run.stages import Run, RunInputs

PLUGIN_NAME = "yoda-harness-plan"
# The inputs' own errors (each names its file, row, option or token): found while planning the
# session, they are usage errors (exit 4, one line), never an INTERNALERROR.
INPUT_ERRORS = (DataError, ModelInputError, ModelUnavailable, profile_registry.ProfileError, options.OptionError)


def requested_profile(config) -> tuple[str, str | None]:
    """(profile name, where it was named explicitly: the option or the variable; None for auto by default)."""
    option = config.getoption("--yoda-profile")
    if option:
        return option, "--yoda-profile"
    variable = os.environ.get("YODA_HARNESS_PROFILE")
    if variable:
        return variable, "$YODA_HARNESS_PROFILE"
    return "auto", None


@dataclass(frozen=True)
class SessionOptions:
    """The session's options as given, each checked: what the plan is made of."""

    requested: str  # the profile's name or file, or "auto"
    named_by: str | None  # --yoda-profile, $YODA_HARNESS_PROFILE, or None (auto by default)
    named: Profile  # the profile named; tiny stands in for auto until collection resolves it
    named_config: RecipeConfig  # the named profile's recipe config, variant and overrides applied
    variant: str | None
    overrides: tuple[str, ...]
    model_options: ModelOptions
    runs_dir: Path
    baselines_dir: Path

    @classmethod
    def of(cls, config) -> SessionOptions:
        """The options of pytest's `config`; a profile or option that cannot be used is a usage error."""
        name, named_by = requested_profile(config)
        try:
            named = profile_registry.PROFILES["tiny"] if name == "auto" else profile_registry.load_profile(name)
        except profile_registry.ProfileError as error:
            raise pytest.UsageError(f"{named_by} {name!r}: {error}") from None
        variant, overrides = config.getoption("--yoda-variant"), tuple(config.getoption("--yoda-override"))
        try:
            named_config = recipe_config(named, variant, overrides)
        except options.OptionError as error:
            raise pytest.UsageError(str(error)) from None
        cache = config.getoption("--yoda-cache-dir")
        return cls(name, named_by, named, named_config, variant, overrides,
                   options.model_options(cache, config.getoption("--yoda-smollm2-gguf"),
                                         config.getoption("--yoda-phi3-path")),
                   options.runs_dir(cache),
                   options.baselines_dir(config.getoption("--yoda-baselines-dir"), Path(config.rootpath)))

    def config_of(self, profile: Profile) -> RecipeConfig:
        """`profile`'s recipe config with this session's variant and overrides."""
        return self.named_config if profile is self.named else recipe_config(profile, self.variant, self.overrides)


def recipe_config(profile: Profile, variant: str | None, overrides: tuple[str, ...]) -> RecipeConfig:
    """The profile's recipe config, with the --yoda-variant's switches, then the --yoda-override values."""
    return options.recipe_config(profile, variant, list(overrides), variant_option="--yoda-variant",
                                 override_option="--yoda-override")


@dataclass(frozen=True)
class SessionPlan:
    """What this session runs: the profile, its recipe config and the run's inputs, and where runs
    and baselines are."""

    profile: Profile
    config: RecipeConfig
    model_options: ModelOptions
    runs_dir: Path
    baselines_dir: Path
    inputs: RunInputs

    @cached_property
    def cannot_train(self) -> str | None:
        """Why the profile's trained stage cannot run here (smollm2 on a CPU), or None where it can."""
        return profile_registry.why_not_runnable(self.profile, self.model_options, stages=("trained",))


class Planner:
    """The session's options (from configure time) and its plan (made once, at collection)."""

    def __init__(self, config, session_options: SessionOptions):
        self.config = config
        self.options = session_options
        self.planned: SessionPlan | None = None
        # An xdist worker's usage error at collection: it cannot stop the session (the controller would
        # report an INTERNALERROR), so every check that needs the plan fails with its line instead.
        self.worker_refusal: str | None = None
        self._comparison: baseline_store.Comparison | baseline_store.BaselineError | None = None

    def plan(self, stages: tuple[str, ...] = profile_registry.STAGES) -> SessionPlan:
        """The session's plan, made on the first call: a profile whose `stages` (those the collected
        checks need) cannot run here, or an input that cannot be used, is a usage error."""
        if self.worker_refusal is not None:
            pytest.fail(self.worker_refusal, pytrace=False)
        if self.planned is None:
            self.planned = self._make(stages)
        return self.planned

    def plan_at_collection(self, stages: tuple[str, ...]) -> None:
        """Make the plan for the stages the collected checks need; a usage error stops the session,
        but in an xdist worker it becomes the failure of every check that needs the plan."""
        try:
            self.plan(stages)
        except pytest.UsageError as error:
            if getattr(self.config, "workerinput", None) is None:
                raise
            self.worker_refusal = str(error)

    def _make(self, stages: tuple[str, ...]) -> SessionPlan:
        from harness.run import stages as run_stages

        profile = self._profile(stages)
        _pin_cpu_kernels(self.config, profile)
        config = self.options.config_of(profile)
        try:  # reads the data and the model's identity: a bad input stops the session here, in one line
            inputs = run_stages.run_inputs(profile, self.options.model_options, config)
        except INPUT_ERRORS as error:
            raise pytest.UsageError(f"yoda-harness: {self.options.named_by or '--yoda-profile'} "
                                    f"{self.options.requested}: {error}") from None
        return SessionPlan(profile, config, self.options.model_options, self.options.runs_dir,
                           self.options.baselines_dir, inputs)

    def _profile(self, stages: tuple[str, ...]) -> Profile:
        """The profile this session runs: auto's choice, or the one named if the stages it needs can run here."""
        name, named_by, model_options = self.options.requested, self.options.named_by, self.options.model_options
        if name == "auto":
            try:
                choice = profile_registry.choose_auto(model_options)
            except profile_registry.UnknownProfile as error:
                raise pytest.UsageError(f"yoda-harness: --yoda-profile auto: {error}") from None
            announce(self.config, choice.describe())
            return profile_registry.PROFILES[choice.name]
        reason = profile_registry.why_not_runnable(self.options.named, model_options, stages=stages)
        if reason:
            raise pytest.UsageError(
                f"yoda-harness: {named_by} {name}: cannot run here: {reason}. "
                "Choose a profile that can (`python -m harness doctor` lists them), or leave the profile to auto"
            )
        return self.options.named

    def comparison(self, run: Run) -> baseline_store.Comparison:
        """This session's run compared with its baseline entry, made once: the checks, the report and
        the summary read the same comparison (a baseline file that cannot be read raises each time)."""
        if self._comparison is None:
            try:
                self._comparison = baseline_store.compare(self.options.baselines_dir / f"{run.profile}.json",
                                                          run.profile, run.record.environment.as_dict())
            except baseline_store.BaselineError as error:
                self._comparison = error
        if isinstance(self._comparison, baseline_store.BaselineError):
            raise self._comparison.with_traceback(None)
        return self._comparison


def planner(config) -> Planner:
    return config.pluginmanager.get_plugin(PLUGIN_NAME)


def register(config) -> None:
    """Called from `harness.checks.plugin.pytest_configure`: the options checked, the planner registered."""
    config.pluginmanager.register(Planner(config, SessionOptions.of(config)), PLUGIN_NAME)


def _pin_cpu_kernels(config, profile: Profile) -> None:
    """The profile's CPU kernel pins, before anything of the recipe imports bitsandbytes (which
    makes torch choose its kernels); xdist workers inherit the variables and pin again themselves."""
    if env.gpu_available():
        return  # a GPU run: the CPU pins do not select its numerics
    try:
        pinned = env.pin(profile.cpu)
    except env.PinError as error:
        raise pytest.UsageError(f"yoda-harness: profile {profile.name}: {error}") from None
    if pinned.any:
        announce(config, f"profile {profile.name}: CPU kernels pinned: "
                         + ", ".join(f"{k}={v}" for k, v in pinned.as_dict().items()))


def announce(config, line: str) -> None:
    manager = getattr(config, "pluginmanager", None)
    reporter = manager.get_plugin("terminalreporter") if manager is not None else None
    if reporter is not None:
        reporter.write_line(f"yoda-harness: {line}")
