"""A `-p` plugin for tests of a spread-out `pytest suites` run: logs training, rebuilds and checks.

Appends to $YODA_HARNESS_TRAIN_LOG `train <worker>` each time `qlora_sft.train` runs, `rebuild
<worker>` each time `stages.prepare_live` does, and `check <worker> <node id>` for each check, so
`tests/test_scaling.py` can assert that pytest-xdist workers trained once between them and that
every worker ran checks.
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
    from harness.recipe import qlora_sft
    from harness.run import stages
    qlora_sft.train = _logged(qlora_sft.train, "train")
    stages.prepare_live = _logged(stages.prepare_live, "rebuild")


def pytest_runtest_call(item):
    _log(f"check {_worker()} {item.nodeid}")
