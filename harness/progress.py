"""Progress a person can see while the recipe runs: phase lines and a training line.

The recipe says what it is doing through `say`; where the words go is the caller's choice: the
CLI leaves them on stderr, the pytest plugin routes them through its terminal reporter with
capture suspended, so they show in a plain `pytest suites`. `YODA_HARNESS_QUIET=1` (or `-q -q`
under pytest) silences them.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

_sink: Callable[[str], None] | None = None

# A training line at most this often: enough to see it move, not enough to flood a CI log.
TRAINING_LINE_SECONDS = 5.0


def set_sink(sink: Callable[[str], None] | None) -> None:
    global _sink
    _sink = sink


def quiet() -> bool:
    return os.environ.get("YODA_HARNESS_QUIET") == "1"


def say(message: str) -> None:
    if quiet():
        return
    line = f"[harness] {message}"
    if _sink is not None:
        _sink(line)
    else:
        print(line, file=sys.stderr, flush=True)


def training_line(step: int, total: int, loss: float | None, elapsed: float) -> str:
    """'train step 120/351 loss 5.912 elapsed 41s ETA 79s' (ETA from the pace so far)."""
    eta = elapsed / step * (total - step) if step and total else None
    parts = [f"train step {step}/{total or '?'}"]
    if loss is not None:
        parts.append(f"loss {loss:.3f}")
    parts.append(f"elapsed {elapsed:.0f}s")
    if eta is not None:
        parts.append(f"ETA {eta:.0f}s")
    return " ".join(parts)


def training_callback():
    """A `transformers.TrainerCallback` that says a training line at most every few seconds."""
    from transformers import TrainerCallback

    class TrainingProgress(TrainerCallback):
        def __init__(self):
            self.started = self.last = None
            self.loss = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = self.last = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = logs["loss"]

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            if now - self.last >= TRAINING_LINE_SECONDS or state.global_step == state.max_steps:
                self.last = now
                say(training_line(state.global_step, state.max_steps, self.loss, now - self.started))

    return TrainingProgress()
