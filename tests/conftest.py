import json
import os
from pathlib import Path

import pytest

# The tests start many pytest sessions of their own, some beside another (xdist, torchrun): an OpenMP
# thread that spins while it waits takes a core another process needs. Set before torch loads (here
# and in every subprocess, which inherit it); it changes no result, only how threads wait.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The tiny profile's CPU kernel pins, before anything imports bitsandbytes (which fixes torch's
# kernels for the process): the recipe runs in-process in many tests, as in `pytest suites`.
from harness import env  # noqa: E402
from harness.recipe.profiles import PROFILES  # noqa: E402

env.pin(PROFILES["tiny"].cpu)

# Imported once for the whole session: pytester's in-process runs forget the modules they import,
# and torch and pyarrow (under datasets) crash or refuse when imported a second time in a process.
import bitsandbytes  # noqa: F401,E402  (it registers torch operators: twice is an error)
import datasets  # noqa: F401,E402
import torch  # noqa: F401,E402

from harness.recipe.data import load_rows

os.environ.setdefault("YODA_HARNESS_QUIET", "1")


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory) -> Path:
    """Built model checkpoints shared by every test of the session (they depend only on code + data)."""
    return Path(os.environ.get("YODA_HARNESS_MODELS_DIR") or tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def small_recipe(tmp_path_factory) -> list[str]:
    """The tiny profile's recipe on 48 rows, one epoch, short generations (as test_recipe.py's): KEY=VALUE pairs."""
    rows, _ = load_rows("bundled")
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows[:48]))
    return [f"data.source={path}", "training.num_train_epochs=1", "generation.max_new_tokens=8"]


@pytest.fixture(scope="session")
def small_overrides(small_recipe) -> list[str]:
    """`small_recipe` as pytest options (`--yoda-override KEY=VALUE ...`)."""
    return [arg for pair in small_recipe for arg in ("--yoda-override", pair)]


@pytest.fixture(scope="session")
def small_cli_overrides(small_recipe) -> list[str]:
    """`small_recipe` as the command line's flags (`--override KEY=VALUE ...`)."""
    return [arg for pair in small_recipe for arg in ("--override", pair)]


def pytest_collection_modifyitems(items):
    """The files with the most trainings (slow tests) first, each file's tests kept together (its module
    fixtures are made once): under `-n 2` the long ones start at once, instead of one worker finishing
    a training alone after the other ran out of tests."""
    slow_per_file: dict[str, int] = {}
    for item in items:
        slow_per_file[item.path] = slow_per_file.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    order = {item: index for index, item in enumerate(items)}
    items.sort(key=lambda item: (-slow_per_file[item.path], order[item]))
