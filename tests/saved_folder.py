"""A saved folder made without training: the tiny profile's tokenizer saved as `trainer.save_model`
saves it (`processing_class.save_pretrained`), changed for the save only, then read back and
recorded by harness/recipe/deployed.py as the recipe's reload phase records it.
"""

from __future__ import annotations

from pathlib import Path

from harness.recipe import deployed, profiles, qlora_sft

WRITERS = {"transformers": "9.9.9", "tokenizers": "0.0.1", "trl": "1.2.3", "peft": "0.4.5"}


def tiny_checkpoint(models_dir: Path):
    return profiles.PROFILES["tiny"].build_checkpoint(profiles.ModelOptions(models_dir=models_dir))


def trained_tokenizer(checkpoint):
    """The tokenizer as the recipe trains with it (pad = unk)."""
    return qlora_sft.prepare_tokenizer(qlora_sft.load_tokenizer(checkpoint))


def saved_record(tmp_path, checkpoint, trained, change=None, generation_config=None):
    """Save `trained` (changed by `change` for the save only), read the folder back, record it."""
    from transformers import GenerationConfig

    folder = tmp_path / "adapter"
    undo = change(trained) if change else None
    try:
        trained.save_pretrained(str(folder))
    finally:
        if undo:
            undo()
    if generation_config is not None:
        generation_config.save_pretrained(str(folder))
    saved_generation_config = deployed.load_generation_config(folder)
    config = saved_generation_config or GenerationConfig.from_pretrained(str(checkpoint.path))
    source = deployed.generation_config_source(folder, checkpoint, saved_generation_config)
    return deployed.record(folder, trained, deployed.load_tokenizer(folder), config, source,
                           dict(checkpoint.special_tokens.ids), WRITERS)


def setting(attribute: str, value):
    def change(tokenizer):
        before = getattr(tokenizer, attribute)
        setattr(tokenizer, attribute, value(tokenizer))
        return lambda: setattr(tokenizer, attribute, before)
    return change
