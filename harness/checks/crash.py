"""A crash of the recipe itself, reported once: the phase it failed in, the root cause from the
exception chain, the library versions; every other check that needed that stage says "not run".

Without this, a `KeyError` inside trl's packing fails every check that asks for the prepared
stage with the same traceback (28 errors), and the reader has to find the cause in the noise.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import pytest

from harness import env
from harness.checks.verdicts import CRASH_PHASE_PROPERTY, CRASH_PROPERTY, CRASH_ROOT_PROPERTY, NOT_RUN_PROPERTY

# The libraries a crash of the recipe is usually about, named in its line.
NAMED_LIBRARIES = ("trl", "transformers", "peft", "datasets", "bitsandbytes", "accelerate", "torch")
PHASE_ATTRIBUTE = "harness_phase"  # set on an exception by the phase it escaped from (recipe._Phases)
NOT_RUN_PREFIX = "not run: the recipe failed in phase"


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of the chain (`raise ... from`, or raised while handling another)."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if inner is None or id(inner) in seen:
            return error
        seen.add(id(inner))
        error = inner


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or "(no message)"
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(error).__name__}: {text}"


@dataclass
class RecipeCrash:
    stage: str  # "prepared" | "trained"
    phase: str
    root: str  # 'KeyError: 'text''
    raised_as: str | None  # the outer exception when it is not the root ('ValueError: Error occurred while packing')
    libraries: str
    traceback: str
    reported_by: str | None = None

    @classmethod
    def of(cls, error: BaseException, stage: str) -> "RecipeCrash":
        root = root_cause(error)
        versions = env.package_versions(NAMED_LIBRARIES)
        libraries = ", ".join(f"{name} {version}" for name, version in versions.items() if version)
        return cls(stage=stage, phase=getattr(error, PHASE_ATTRIBUTE, None) or stage, root=_one_line(root),
                   raised_as=None if root is error else _one_line(error, 120), libraries=libraries,
                   traceback="".join(traceback.format_exception(error)))

    @property
    def line(self) -> str:
        """'the recipe failed in phase trainer: KeyError: 'text' (raised as ValueError: ...) with trl 0.15.0, ...'"""
        raised = f" (raised as {self.raised_as})" if self.raised_as else ""
        return f"the recipe failed in phase {self.phase}: {self.root}{raised} with {self.libraries}"

    def stops(self, structural: bool) -> bool:
        """Whether a check needs what crashed: a crash in training leaves the structural checks standing."""
        return self.stage == "prepared" or not structural

    def stop(self, request) -> None:
        """Fail the first check that meets the crash with its line and traceback; skip the others
        as "not run" (the verdict counts them; the session is red through the one BROKEN)."""
        if self.reported_by is None or self.reported_by == request.node.nodeid:
            self.reported_by = request.node.nodeid
            request.node.user_properties.append((CRASH_PROPERTY, self.line))
            request.node.user_properties += [(CRASH_PHASE_PROPERTY, self.phase), (CRASH_ROOT_PROPERTY, self.root)]
            pytest.fail(f"{self.line}\n\n{self.traceback}", pytrace=False)
        request.node.user_properties.append((NOT_RUN_PROPERTY, f"the recipe failed in phase {self.phase}"))
        pytest.skip(f"{NOT_RUN_PREFIX} {self.phase} ({self.root}); reported by {self.reported_by}")
