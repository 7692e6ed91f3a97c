"""Recipe step 7, batched: greedy generation over many prompts with per-row stop accounting.

`generate` stops a row at its EOS and fills the row's later positions with the pad token, so a
row *stopped* only if its first EOS is followed by nothing but padding. A row with no EOS ran to
`max_new_tokens`; a row whose EOS is followed by other tokens did not stop either.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

from harness.recipe import compat

STOP_EOS = "eos"
STOP_LENGTH = "max_new_tokens"
STOP_EOS_THEN_MORE = "eos_then_more"


@dataclass
class Generation:
    prompt: str
    text: str  # up to the first EOS, special tokens removed: what is scored
    raw: str  # every generated token up to and including the first EOS, special tokens kept
    stop_reason: str
    new_tokens: int
    token_ids: list[int]

    def as_dict(self) -> dict:
        return asdict(self)


def build_prompt(tokenizer, sentence: str) -> str:
    """The recipe's prompt: one user message, chat template, generation prompt."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": sentence}], tokenize=False, add_generation_prompt=True
    )


def classify_row(new_ids: list[int], eos_id: int, pad_id: int, max_new_tokens: int) -> tuple[str, int]:
    """(stop reason, tokens used) for one row of generated ids (prompt removed)."""
    if eos_id not in new_ids:
        used = len(new_ids)
        while used and new_ids[used - 1] == pad_id and pad_id != eos_id:
            used -= 1
        return STOP_LENGTH, used
    end = new_ids.index(eos_id) + 1
    rest = new_ids[end:]
    if any(token != pad_id for token in rest):
        return STOP_EOS_THEN_MORE, len(new_ids)
    return STOP_EOS, end


def generate_batched(model, tokenizer, sentences: list[str], max_new_tokens: int = 64,
                     batch_size: int = 32, autocast_dtype=None) -> list[Generation]:
    """Greedy generations for `sentences`, left-padded in batches, in input order."""
    import torch

    tokenizer.padding_side = "left"
    model.eval()
    results: list[Generation] = []
    device = next(model.parameters()).device
    for start in range(0, len(sentences), batch_size):
        prompts = [build_prompt(tokenizer, s) for s in sentences[start:start + batch_size]]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        # transformers 4.x tokenizers add token_type_ids, which generate() refuses for Phi-3.
        inputs, _ = compat.generation_inputs(model, batch)
        with torch.no_grad(), _autocast(device, autocast_dtype):
            output = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,
            )
        new_tokens = output[:, batch["input_ids"].shape[1]:].tolist()
        results.extend(_to_generation(tokenizer, p, ids, max_new_tokens) for p, ids in zip(prompts, new_tokens))
    return results


def _to_generation(tokenizer, prompt: str, new_ids: list[int], max_new_tokens: int) -> Generation:
    reason, used = classify_row(new_ids, tokenizer.eos_token_id, tokenizer.pad_token_id, max_new_tokens)
    kept = new_ids[:used]
    before_eos = kept[:-1] if reason == STOP_EOS else kept
    return Generation(
        prompt=prompt,
        text=tokenizer.decode(before_eos, skip_special_tokens=True).strip(),
        raw=tokenizer.decode(kept, skip_special_tokens=False),
        stop_reason=reason,
        new_tokens=used,
        token_ids=kept,
    )


def _autocast(device, dtype):
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
