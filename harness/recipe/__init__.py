"""The recipe under test: config, data, models, the QLoRA SFT steps, generation, reload, metrics."""
