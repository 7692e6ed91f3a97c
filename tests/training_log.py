"""A `-p` plugin for tests of a spread-out `pytest suites` run: logs training, rebuilds and checks.

Appends to $YODA_HARNESS_TRAIN_LOG `train <worker>` each time `recipe.train` runs, `rebuild
<worker>` each time `recipe.rebuild_live` does, and `check <worker> <node id>` for each check, so
`tests/test_scaling.py` can assert that pytest-xdist workers trained once between them and that
every worker ran checks. With $YODA_HARNESS_ONLY_LIVE=1 only the checks that use the `live`
fixture are collected: then every worker needs the live objects, and must train or rebuild them.
"""

from __future__ import annotations

import os


def _log(line: str) -> None:
    with open(os.environ["YODA_HARNESS_TRAIN_LOG"], "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _logged(function, event: str):
    def logged(*args, **kwargs):
        _log(f"{event} {_worker()}")
        return function(*args, **kwargs)

    return logged


def pytest_configure(config):
    from harness import recipe

    recipe.train = _logged(recipe.train, "train")
    recipe.rebuild_live = _logged(recipe.rebuild_live, "rebuild")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("YODA_HARNESS_ONLY_LIVE") == "1":
        items[:] = [item for item in items if "live" in getattr(item, "fixturenames", ())]


def pytest_runtest_call(item):
    _log(f"check {_worker()} {item.nodeid}")
