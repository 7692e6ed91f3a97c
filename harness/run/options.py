"""What the pytest plugin's options and the command line's flags mean, in one place, free of pytest.

Both spell their options differently (`--yoda-cache-dir` under pytest, where every option is
namespaced; `--cache-dir` on the CLI, whose flags are its own) and resolve them here the same way:

- a path given explicitly is relative to the current directory;
- the cache is `$YODA_HARNESS_CACHE`, else `~/.cache/yoda-harness` (runs under `runs/`, converted
  models under `models/` or `$YODA_HARNESS_MODELS_DIR`);
- the baselines are `<root>/baselines`, the root being pytest's rootdir under pytest and, on the CLI,
  the nearest directory upwards holding one of pytest's rootdir markers (`project_root`), so both
  find the same files from a subdirectory;
- overrides are `KEY=VALUE` with JSON values (else text), checked against the recipe config's
  fields and types before anything loads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.recipe.models.sources import ModelOptions

# The files pytest takes as marking the rootdir (pytest's own list, in its order).
ROOT_MARKERS = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


class OptionError(ValueError):
    """An option's value that cannot be used; the message names the option."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("YODA_HARNESS_CACHE") or Path.home() / ".cache" / "yoda-harness")


def cache_dir(option: str | None) -> Path:
    return Path(option) if option else default_cache_dir()


def runs_dir(cache_option: str | None) -> Path:
    return cache_dir(cache_option) / "runs"


def model_options(cache_option: str | None, smollm2_gguf: str | None = None,
                  phi3_path: str | None = None) -> ModelOptions:
    models = os.environ.get("YODA_HARNESS_MODELS_DIR") or cache_dir(cache_option) / "models"
    return ModelOptions(models_dir=Path(models), smollm2_gguf=smollm2_gguf, phi3_path=phi3_path)


def project_root(start: Path | None = None) -> Path:
    """The nearest directory from `start` (default: the current one) upwards with a rootdir marker."""
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if any((directory / marker).is_file() for marker in ROOT_MARKERS):
            return directory
    return start


def baselines_dir(option: str | None, root: Path | None = None) -> Path:
    return Path(option) if option else (root or project_root()) / "baselines"


def parse_overrides(pairs: list[str], option: str = "--override") -> dict:
    """`["training.learning_rate=1e-3"]` -> `{"training.learning_rate": 0.001}` (JSON values, else text)."""
    overrides = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"{option} {pair!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(raw)
        except ValueError:
            overrides[key] = raw
    return overrides


def recipe_config(profile, variant: str | None, overrides: list[str], *, variant_option: str = "--variant",
                  override_option: str = "--override"):
    """The profile's recipe config, with the variant's switches, then the overrides; any of them
    that cannot be used is an OptionError naming its option."""
    from harness.recipe import variants

    try:
        config = profile.recipe_config().with_overrides(variants.overrides(variant))
    except variants.UnknownVariant as error:
        raise OptionError(f"{variant_option}: {error}") from None
    try:
        return config.with_overrides(parse_overrides(overrides, override_option))
    except OptionError:
        raise
    except (ValueError, TypeError) as error:
        raise OptionError(f"{override_option}: {error}") from None
