import os
from pathlib import Path

import pytest

os.environ.setdefault("YODA_HARNESS_QUIET", "1")


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory) -> Path:
    """Built model checkpoints shared by every test of the session (they depend only on code + data)."""
    return Path(os.environ.get("YODA_HARNESS_MODELS_DIR") or tmp_path_factory.mktemp("models"))
