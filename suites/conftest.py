import pytest


@pytest.fixture(scope="session")
def run_artifacts(recipe_run):
    """Read one artifact file of the finished run by name."""
    return recipe_run.artifact
