"""The "Chat template" section: the rendered example and prompt token by token, special tokens marked,
and what users deploy: the saved folder's tokens, chat template and generation config beside the
trained ones (harness/recipe/deployed.py), which the deployed (tuned) generations used.

`special_segments` also marks the special tokens in the model outputs of the per-sentence table.
"""

from __future__ import annotations

import re
from typing import Any

from harness.checks.report.formatting import item_at
from harness.recipe import deployed
from harness.recipe.record import Tokens, to_json

# Special tokens in the Phi-3 / Llama styles, and byte-fallback tokens.
_SPECIAL = re.compile(r"<\|[^|<>\s]{1,40}\|>|<unk>|</?s>|<0x[0-9A-Fa-f]{2}>")


def special_segments(text: str | None, specials: set[str] | frozenset = frozenset()) -> list[dict]:
    """`text` cut into plain and special-token pieces; a newline becomes its own piece (shown as ↵)."""
    if not text:
        return []
    # Longest first: an alternation takes the first branch that fits, so a token that begins with
    # another one would otherwise be cut after the shorter.
    known = "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True) if s)
    pattern = re.compile(f"({known + '|' if known else ''}{_SPECIAL.pattern})")
    segments = []
    for i, piece in enumerate(pattern.split(text)):
        if i % 2 == 1:  # re.split with one group: the odd pieces are the matches
            segments.append({"kind": "special", "text": piece})
            continue
        segments.extend(_plain_segments(piece))
    return segments


def _plain_segments(piece: str) -> list[dict]:
    segments = []
    lines = piece.split("\n")
    for j, line in enumerate(lines):
        if line:
            segments.append({"kind": "text", "text": line})
        if j < len(lines) - 1:
            segments.append({"kind": "newline", "text": "\n"})
    return segments


def template_context(template: dict | None, tokens: Tokens, saved: deployed.Saved | None = None) -> dict | None:
    """The rendered training example and generation prompt, token by token, special tokens marked;
    the saved folder beside them."""
    if template is None:
        return None
    specials = _special_tokens(tokens)
    ids = template.get("token_ids") or []
    chips = [_token_chip(str(token), item_at(ids, i), specials) for i, token in enumerate(template.get("tokens") or [])]
    return {
        "messages": (template.get("example") or {}).get("messages") or [],
        "rendered": special_segments(template.get("rendered"), specials),
        "generation_prompt": special_segments(template.get("generation_prompt"), specials),
        "chips": chips,
        "chat_template": template.get("chat_template"),
        "tokens": _tokens_shown(tokens),
        "saved": saved_context(saved, specials),
    }


def saved_context(saved: deployed.Saved | None, specials: set[str] | frozenset = frozenset()) -> dict | None:
    """What `trainer.save_model` wrote, read back as deployed, beside what the model trained with;
    None for a run recorded before the harness read the folder back."""
    if saved is None:
        return None
    folder, tokenizer, template = saved.folder, saved.tokenizer, saved.template
    problems = deployed.mismatches(saved)
    failed = {row["check"] for row in problems}
    token_rows = [{
        "role": role,
        "trained": tokenizer.trained.role(role)[0], "trained_id": tokenizer.trained.role(role)[1],
        "saved": tokenizer.saved.role(role)[0], "saved_id": tokenizer.saved.role(role)[1],
        "where": f"{folder}/{tokenizer.fields[role].file if role in tokenizer.fields else '?'}",
        "match": role not in failed,
    } for role in deployed.ROLES]
    return {
        "folder": folder,
        "files": saved.files,
        "written_by": deployed.writers(saved),
        "deployed_generations": saved.deployed_generations,
        "tokens": token_rows,
        "ids_match": "ids" not in failed,
        "template_file": f"{folder}/{template.file}" if template.file else None,
        "template_same_source": template.same_source,
        "prompts": _prompt_rows(template, specials),
        "template_match": "template" not in failed,
        "generation_config": dict(to_json(saved.generation_config), covers="generation_config" not in failed,
                                  trained_eos=tokenizer.trained.eos, trained_eos_id=tokenizer.trained.eos_id),
        "problems": [deployed.describe(row, saved) for row in problems],
    }


def _prompt_rows(template: deployed.SavedTemplate, specials: set[str] | frozenset) -> list[dict]:
    """Each prompt a server renders, trained beside saved."""
    rows = []
    for name, trained in deployed.in_order(template.trained, deployed.PROMPTS):
        shown = template.saved.get(name)
        trained_text = trained.text if isinstance(trained, deployed.RenderedPrompt) else None
        shown_text = shown.text if isinstance(shown, deployed.RenderedPrompt) else None
        rows.append({
            "name": name,
            "trained": special_segments(trained_text, specials) if trained_text is not None else None,
            "saved": special_segments(shown_text, specials) if shown_text is not None else None,
            "error": shown.error if isinstance(shown, deployed.PromptError) else None,
            "match": trained_text is not None and trained == shown,
        })
    return rows


def _special_tokens(tokens: Tokens) -> set[str]:
    """The run's own special tokens (which the generic pattern may not know)."""
    return {t for t in (tokens.eos, tokens.pad, tokens.end_of_turn, *tokens.role_markers) if t}


def _tokens_shown(tokens: Tokens) -> dict:
    return {
        "as_shipped": to_json(tokens.as_shipped),
        "as_read": to_json(tokens.as_read) if tokens.as_read else {},
        "corrections": to_json(tokens.corrections),
        "pad": tokens.pad, "pad_id": tokens.pad_id,
        "eos": tokens.eos, "eos_id": tokens.eos_id,
        "end_of_turn": tokens.end_of_turn, "role_markers": tokens.role_markers,
    }


def _token_chip(token: str, token_id: Any, specials: set[str]) -> dict:
    is_byte = token.startswith("<0x") and bool(_SPECIAL.fullmatch(token))
    is_special = token in specials or (bool(_SPECIAL.fullmatch(token)) and not is_byte)
    return {"text": token, "id": token_id, "special": is_special, "byte": is_byte}
