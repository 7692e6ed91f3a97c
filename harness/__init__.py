"""yoda-harness: the QLoRA English→Yoda SFT recipe as pytest fixtures, with checks and baselines."""

__version__ = "0.1.0"
