"""Scores (sacrebleu) and the analytic predictions of memory and parameter counts.

Memory and parameter figures depend only on the architecture, the quantization and the
adapter config, so they are predicted from the model config alone — the model is built on
PyTorch's `meta` device, which allocates nothing — and the suites compare the measured
figures with these predictions exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.recipe.data import score_key

MB = 1_000_000  # `get_memory_footprint()` figures in the recipe are bytes / 1e6


# ---------------------------------------------------------------- translation quality
def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU, chrF and TER with their sacrebleu signatures (what makes a score reproducible)."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    bleu, chrf, ter = BLEU(), CHRF(), TER()
    return {
        "bleu": round(bleu.corpus_score(hypotheses, [references]).score, 4),
        "chrf": round(chrf.corpus_score(hypotheses, [references]).score, 4),
        "ter": round(ter.corpus_score(hypotheses, [references]).score, 4),
        "signatures": {
            "bleu": str(bleu.get_signature()),
            "chrf": str(chrf.get_signature()),
            "ter": str(ter.get_signature()),
        },
    }


def sentence_bleu(hypothesis: str, reference: str) -> float:
    from sacrebleu.metrics import BLEU

    return round(BLEU(effective_order=True).sentence_score(hypothesis, [reference]).score, 4)


def quality_scores(eval_rows: list[dict], base, tuned, columns) -> dict:
    """A run's `metrics`: the base and tuned generations (`harness.recipe.generate.Generation`, in
    `eval_rows`' order) scored against each reference column of `columns` (`harness.recipe.data.Columns`).

    Corpus scores go under `vs_<column>` (`vs_translation_extra` and `vs_translation` for the
    bundled data); sentence BLEU and the reference length are against the target column.
    """
    references = {column: [row[column] for row in eval_rows] for column in columns.references}
    targets = references[columns.target]

    def summary(generations):
        texts = [g.text for g in generations]
        stopped = [g for g in generations if g.stop_reason == "eos"]
        non_empty_stopped = [g for g in stopped if g.text]
        return {
            **{score_key(column): corpus_scores(texts, refs) for column, refs in references.items()},
            "stop_rate": round(len(stopped) / len(generations), 4),
            "non_empty_stop_rate": round(len(non_empty_stopped) / len(generations), 4),
            "empty_rate": round(sum(1 for t in texts if not t) / len(texts), 4),
            "mean_new_tokens": round(sum(g.new_tokens for g in generations) / len(generations), 3),
            "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 3),
            "sentence_bleu": [sentence_bleu(g.text, r) for g, r in zip(generations, targets)],
        }

    return {"base": summary(base), "tuned": summary(tuned), "eval_rows": len(eval_rows),
            "reference_mean_words": round(sum(len(r.split()) for r in targets) / len(targets), 3)}


# ---------------------------------------------------------------- memory and parameters
@dataclass(frozen=True)
class StructurePrediction:
    """What the recipe's model should look like, predicted from configs alone."""

    quantized_modules: tuple[str, ...]
    lora_modules: tuple[str, ...]
    footprint_loaded_bytes: int
    footprint_adapted_bytes: int
    trainable_parameters: int
    total_parameters: int
    adapter_bytes: int

    def as_dict(self) -> dict:
        return {
            "quantized_modules": len(self.quantized_modules),
            "lora_modules": len(self.lora_modules),
            "footprint_loaded_bytes": self.footprint_loaded_bytes,
            "footprint_adapted_bytes": self.footprint_adapted_bytes,
            "trainable_parameters": self.trainable_parameters,
            "total_parameters": self.total_parameters,
            "adapter_bytes": self.adapter_bytes,
        }


def _meta_model(model_config):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        from harness.recipe import compat

        model = AutoModelForCausalLM.from_config(model_config, **{compat.dtype_argument(): _checkpoint_dtype(model_config)})
    model.tie_weights()
    return model


def _checkpoint_dtype(model_config):
    """The dtype the unquantized layers load in: the installed transformers' rule (harness.recipe.compat)."""
    from harness.recipe import compat

    dtype, adaptation = compat.unquantized_load_dtype(model_config)
    compat.record(adaptation)
    return dtype


def predict_structure(model_config, lora_r: int, target_modules: list[str]) -> StructurePrediction:
    """Predict `get_memory_footprint()` after 4-bit loading and after prepare + LoRA.

    - bitsandbytes replaces every `nn.Linear` but the output head by `Linear4bit`, whose packed
      uint8 weight holds two 4-bit values a byte: ceil(n / 2) bytes.
    - The NF4 absmax scales (double-quantized to 8 bits, with fp32 second-level scales) live in
      each weight's `quant_state`, which is neither a parameter nor a buffer, so
      `get_memory_footprint()` does not count them: the prediction leaves them out too.
    - Every other parameter keeps the checkpoint's dtype at load (transformers 5.x), or becomes
      float16 (4.x, when no dtype is given: `harness.recipe.compat.unquantized_load_dtype`);
      `prepare_model_for_kbit_training` upcasts fp16/bf16 ones to fp32.
    - Buffers (rotary `inv_freq`) are counted at their own dtype.
    - LoRA adds r x (in + out) fp32 parameters per target module; those are the trainable ones.
    """
    import torch

    model = _meta_model(model_config)
    output_head = model.get_output_embeddings()
    quantized, lora, loaded, adapted = [], [], 0, 0
    trainable = total = 0
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not output_head:
            quantized.append(module_name)
            if module_name.rsplit(".", 1)[-1] in target_modules:
                lora.append(module_name)
                trainable += lora_r * (module.in_features + module.out_features)
    quantized_weights = {id(model.get_submodule(name).weight) for name in quantized}
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        if id(parameter) in quantized_weights:
            packed = (parameter.numel() + 1) // 2
            loaded += packed
            adapted += packed
        else:
            loaded += parameter.numel() * parameter.element_size()
            upcast = parameter.dtype in (torch.float16, torch.bfloat16)
            adapted += parameter.numel() * (4 if upcast else parameter.element_size())
    buffers = sum(buffer.numel() * buffer.element_size() for buffer in model.buffers())
    adapter_bytes = trainable * 4
    return StructurePrediction(
        quantized_modules=tuple(quantized),
        lora_modules=tuple(lora),
        footprint_loaded_bytes=loaded + buffers,
        footprint_adapted_bytes=adapted + buffers + adapter_bytes,
        trainable_parameters=trainable,
        total_parameters=total + trainable,
        adapter_bytes=adapter_bytes,
    )


def expected_optimizer_steps(rows: int, batch_size: int, epochs: float, accumulation: int = 1) -> int:
    """Optimizer steps the trainer takes over `rows` packed rows (`harness.recipe.compat.Packing.rows`)."""
    import math

    batches_per_epoch = -(-rows // batch_size)
    updates_per_epoch = max(batches_per_epoch // accumulation, 1)
    return int(math.ceil(updates_per_epoch * epochs))
