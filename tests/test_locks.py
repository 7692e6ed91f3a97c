"""The two locks (filelock): one holder at a time, across threads and processes of one machine."""

import threading
import time

import pytest

from harness.checks import baselines
from harness.run import artifacts


def _second_holder_waits(lock):
    """Hold `lock()` here; another thread asking for it gets it only after it is released."""
    got = threading.Event()

    def take():
        with lock():
            got.set()

    with lock():
        other = threading.Thread(target=take)
        other.start()
        time.sleep(0.3)
        waited = not got.is_set()
    other.join(timeout=10)
    return waited, got.is_set()


@pytest.mark.parametrize("which", ["run", "baseline"])
def test_a_lock_has_one_holder_at_a_time(tmp_path, which):
    if which == "run":
        lock = lambda: artifacts.run_lock(tmp_path / "runs", "key")  # noqa: E731
    else:
        lock = lambda: baselines.file_lock(tmp_path / "tiny.json")  # noqa: E731
    assert _second_holder_waits(lock) == (True, True)
