"""What users deploy: the folder `trainer.save_model` wrote, read back as serving code reads it.

A team ships the saved folder: the adapter, and the tokenizer files, chat template and (where one is
written) generation config beside it. The recipe's reload phase therefore loads the tokenizer from
that folder (`AutoTokenizer.from_pretrained(folder)`: tokenizer_config.json, tokenizer.json,
chat_template.jinja) and, where the folder holds generation_config.json, the generation config
(`GenerationConfig.from_pretrained(folder)`); otherwise the deployed model keeps the base
checkpoint's, as `PeftModel.from_pretrained(base, folder)` gives it. The deployed generations use
them (harness/recipe/qlora_sft.py).

This module records what was saved beside what the model trained with, and names every
difference: a release that writes another EOS, pad or chat template into the saved files (the class
of huggingface/open-r1#663, where the saved generation config and tokenizer disagreed on EOS and the
deployed model never stopped) fails `suites/test_deployed.py`, BROKEN, with one line naming the
file, the field, the trained and the saved value, and the library versions that wrote it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

FOLDER = "adapter"  # the run directory's folder that trainer.save_model wrote
GENERATION_CONFIG = "generation_config.json"
# The libraries whose code wrote the folder: trl's save_model (transformers' Trainer), peft's
# adapter, transformers' and tokenizers' tokenizer files.
WRITERS = ("transformers", "tokenizers", "trl", "peft")
ROLES = ("eos", "pad", "bos", "unk")
# Where transformers saves a special token's name, in the order it reads them back.
TOKEN_FILES = ("tokenizer_config.json", "special_tokens_map.json")

# The prompts a server renders: the recipe's (one user message) and a follow-up turn, each with
# the generation prompt. (A rendered conversation *without* the generation prompt ends with the EOS
# token: that is the EOS check's business, not the template's.)
_USER, _ANSWER, _NEXT = "The Force is strong in you!", "Strong in you, the Force is! Yes, hrrrm.", "Do or do not."
DEPLOYED_GENERATIONS = "tokenizer loaded from the saved folder (and its generation config, where one was saved)"
PROMPTS = {
    "one user turn": [{"role": "user", "content": _USER}],
    "a follow-up turn": [{"role": "user", "content": _USER}, {"role": "assistant", "content": _ANSWER},
                         {"role": "user", "content": _NEXT}],
}

CONSEQUENCE = {
    "eos": "a server loading this folder ends generation on another token than the model learned to end with",
    "pad": "the deployed tokenizer pads with another token than the model trained with",
    "bos": "the deployed tokenizer begins sequences with another token than the model trained with",
    "unk": "the deployed tokenizer maps unknown text to another token than the model trained with",
    "ids": "the deployed tokenizer encodes a special token as another id than the model trained with",
    "template": "the deployed prompt is not the one the model trained on",
    "generation_config": "generate() without an explicit eos_token_id never stops on the EOS the model learned",
}


# ------------------------------------------------------------------ the record's types
# run.json's `saved` section (harness.recipe.record reads and writes it; its JSON keys are these fields).
section = dataclass(frozen=True, kw_only=True)


@section
class TokenizerTokens:
    """A tokenizer's special tokens, their ids, and the ids of the model family's special tokens (`tokens`)."""

    eos: str | None
    eos_id: int | None
    pad: str | None
    pad_id: int | None
    bos: str | None
    bos_id: int | None
    unk: str | None
    unk_id: int | None
    ids: dict[str, int | None]

    def role(self, role: str) -> tuple[str | None, int | None]:
        """(token, id) of one of ROLES."""
        return getattr(self, role), getattr(self, f"{role}_id")


@section
class TokenField:
    """Where the saved folder names a special token."""

    file: str
    field: str


@section
class SavedTokenizer:
    trained: TokenizerTokens
    saved: TokenizerTokens
    fields: dict[str, TokenField]
    tokenizer_class: str  # `class` in the JSON

    @staticmethod
    def gather(raw: dict) -> dict:
        """The JSON's `class` read as `tokenizer_class` (a Python keyword cannot name a field)."""
        return {("tokenizer_class" if key == "class" else key): value for key, value in raw.items()}

    @staticmethod
    def spread(dumped: dict) -> dict:
        return {("class" if key == "tokenizer_class" else key): value for key, value in dumped.items()}


@section
class RenderedPrompt:
    """One of PROMPTS rendered with the generation prompt, and its ids (`prompts`)."""

    text: str
    ids: list[int]


@section
class PromptError:
    """One of PROMPTS that the tokenizer could not render."""

    error: str


Rendered = Union[RenderedPrompt, PromptError]


@section
class SavedTemplate:
    file: str | None
    trained: dict[str, Rendered]
    saved: dict[str, Rendered]
    chat_template: str | None
    same_source: bool


@section
class SavedGenerationConfig:
    """The deployed model's generation config and the file it came from."""

    file: str
    in_folder: bool
    eos_token_id: int | list[int] | None
    pad_token_id: int | list[int] | None
    bos_token_id: int | list[int] | None
    transformers_version: str | None


@section
class Saved:
    """What the saved folder holds beside what the model trained with (run.json's `saved`, `record`)."""

    folder: str
    files: list[str]
    written_by: dict[str, str]
    # What generations_tuned.jsonl (the outputs the quality suites score) generated with.
    deployed_generations: str
    tokenizer: SavedTokenizer
    template: SavedTemplate
    generation_config: SavedGenerationConfig


# ------------------------------------------------------------------ reading the folder back
def load_tokenizer(folder: Path):
    """The tokenizer as serving code loads it from the saved folder."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def load_generation_config(folder: Path):
    """The saved folder's generation config, or None where save_model wrote none."""
    from transformers import GenerationConfig

    return GenerationConfig.from_pretrained(str(folder)) if (Path(folder) / GENERATION_CONFIG).is_file() else None


def use_generation_config(model, generation_config) -> None:
    """Put the saved folder's generation config on the deployed model (where one was saved)."""
    if generation_config is not None:
        _inner(model).generation_config = generation_config


def deployed_generation_config(model):
    return getattr(_inner(model), "generation_config", None)


def generation_config_source(folder: Path, checkpoint, saved) -> str:
    """Where the deployed model's generation config came from, as a failure names it."""
    folder = Path(folder)
    if saved is not None:
        return f"{folder.name}/{GENERATION_CONFIG}"
    if (Path(checkpoint.path) / GENERATION_CONFIG).is_file():
        return f"the base checkpoint's {GENERATION_CONFIG} ({checkpoint.name}; the saved folder has none)"
    return f"the base checkpoint's config.json ({checkpoint.name}; no {GENERATION_CONFIG} saved or shipped)"


def _inner(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


# ------------------------------------------------------------------ the record
def record(folder: Path, trained_tokenizer, saved_tokenizer, generation_config, generation_config_source: str,
           family_ids: dict[str, int], written_by: dict[str, str | None]) -> Saved:
    """What the saved folder holds beside what the model trained with (run.json's `saved`).

    `generation_config` is the deployed model's (the folder's, else the base checkpoint's) and
    `generation_config_source` says which file it came from."""
    folder = Path(folder)
    texts = sorted(set(family_ids) | {t for t in _role_tokens(trained_tokenizer) if t})
    return Saved(
        folder=folder.name,
        files=sorted(p.name for p in folder.iterdir()),
        written_by={name: version for name, version in written_by.items() if version},
        deployed_generations=DEPLOYED_GENERATIONS,
        tokenizer=SavedTokenizer(
            trained=tokens(trained_tokenizer, texts),
            saved=tokens(saved_tokenizer, texts),
            fields=_token_fields(folder),
            tokenizer_class=type(saved_tokenizer).__name__,
        ),
        template=SavedTemplate(
            file=_template_file(folder),
            trained=prompts(trained_tokenizer),
            saved=prompts(saved_tokenizer),
            chat_template=getattr(saved_tokenizer, "chat_template", None),
            same_source=getattr(saved_tokenizer, "chat_template", None) == getattr(trained_tokenizer, "chat_template", None),
        ),
        generation_config=_generation_config_record(generation_config, generation_config_source, folder),
    )


def tokens(tokenizer, texts: list[str]) -> TokenizerTokens:
    """A tokenizer's special tokens, their ids, and the ids of the model family's special tokens."""
    roles: dict[str, Any] = {}
    for role in ROLES:
        roles[role] = getattr(tokenizer, f"{role}_token", None)
        roles[f"{role}_id"] = getattr(tokenizer, f"{role}_token_id", None)
    return TokenizerTokens(**roles, ids={text: tokenizer.convert_tokens_to_ids(text) for text in texts})


def prompts(tokenizer) -> dict[str, Rendered]:
    """Each of PROMPTS rendered with the generation prompt, and its ids as the recipe tokenizes a prompt."""
    rendered: dict[str, Rendered] = {}
    for name, messages in PROMPTS.items():
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as error:  # noqa: BLE001 - a folder saved without a template cannot render at all
            rendered[name] = PromptError(error=f"{type(error).__name__}: {error}")
            continue
        rendered[name] = RenderedPrompt(text=text, ids=list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return rendered


def _role_tokens(tokenizer) -> list[str]:
    return [getattr(tokenizer, f"{role}_token", None) for role in ROLES]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _token_fields(folder: Path) -> dict[str, TokenField]:
    """{role: {file, field}}: where the saved folder names each special token (tokenizer.json only
    holds the vocabulary and the added tokens: a token named in neither file is the class's default)."""
    fields = {}
    for role in ROLES:
        for name in TOKEN_FILES:
            if f"{role}_token" in _read_json(folder / name):
                fields[role] = TokenField(file=name, field=f"{role}_token")
                break
        else:
            fields[role] = TokenField(file="tokenizer.json", field=f"{role} token (named in neither {' nor '.join(TOKEN_FILES)})")
    return fields


def _template_file(folder: Path) -> str | None:
    if (folder / "chat_template.jinja").is_file():
        return "chat_template.jinja"
    if (folder / "chat_template.json").is_file():
        return "chat_template.json"
    if "chat_template" in _read_json(folder / "tokenizer_config.json"):
        return "tokenizer_config.json"
    return None


def _generation_config_record(config, source: str, folder: Path) -> SavedGenerationConfig:
    if config is None:
        return SavedGenerationConfig(file=source, in_folder=False, eos_token_id=None, pad_token_id=None,
                                     bos_token_id=None, transformers_version=None)
    return SavedGenerationConfig(
        file=source,
        in_folder=(folder / GENERATION_CONFIG).is_file(),
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        transformers_version=getattr(config, "transformers_version", None),
    )


# ------------------------------------------------------------------ the differences
def mismatches(saved: Saved) -> list[dict]:
    """One row per difference between what the folder holds and what the model trained with:
    {check, file, field, trained, saved}; `check` is a role (eos, pad, bos, unk), ids, template or
    generation_config."""
    rows = []
    folder = saved.folder
    trained, deployed, fields = saved.tokenizer.trained, saved.tokenizer.saved, saved.tokenizer.fields
    for role in ROLES:
        if trained.role(role) != deployed.role(role):
            where = fields.get(role) or TokenField(file="tokenizer_config.json", field=f"{role}_token")
            rows.append({"check": role, "file": f"{folder}/{where.file}", "field": where.field,
                         "trained": _token(*trained.role(role)), "saved": _token(*deployed.role(role))})
    for text, trained_id in trained.ids.items():
        if deployed.ids.get(text) != trained_id:
            rows.append({"check": "ids", "file": f"{folder}/tokenizer.json", "field": f"id of {text!r}",
                         "trained": trained_id, "saved": deployed.ids.get(text)})
    rows += _template_mismatches(saved.template, folder)
    rows += _generation_config_mismatches(saved.generation_config, trained.eos_id, trained.eos)
    return rows


def _token(text, token_id) -> str:
    return f"{text!r} (id {token_id})"


def _template_mismatches(template: SavedTemplate, folder: str) -> list[dict]:
    rows = []
    file = f"{folder}/{template.file}" if template.file else f"{folder}/ (no chat template file)"
    for name, trained in in_order(template.trained, PROMPTS):
        saved = template.saved.get(name) or PromptError(error="not rendered")
        field = f"rendered prompt ({name}, add_generation_prompt=True)"
        if isinstance(saved, PromptError) or isinstance(trained, PromptError):
            if saved != trained:
                rows.append({"check": "template", "file": file, "field": field,
                             "trained": _shown_prompt(trained), "saved": _shown_prompt(saved)})
        elif saved.text != trained.text:
            at = _first_difference(trained.text, saved.text)
            rows.append({"check": "template", "file": file, "field": f"{field} from character {at}",
                         "trained": _excerpt(trained.text, at), "saved": _excerpt(saved.text, at)})
        elif saved.ids != trained.ids:
            at = _first_difference(trained.ids, saved.ids)
            rows.append({"check": "template", "file": f"{folder}/tokenizer.json", "field": f"token ids of the {field} from token {at}",
                         "trained": trained.ids[at:at + 6], "saved": saved.ids[at:at + 6]})
    return rows


def _shown_prompt(prompt: Rendered) -> str:
    """A prompt's error, else the start of its text."""
    return prompt.error if isinstance(prompt, PromptError) else _excerpt(prompt.text, 0)


def in_order(record: dict, order) -> list[tuple[str, Any]]:
    """`record`'s items in `order` first (run.json is written with sorted keys), then the rest."""
    return [(key, record[key]) for key in order if key in record] + \
        [(key, value) for key, value in record.items() if key not in order]


def writers(saved: Saved) -> str:
    """'transformers 5.23.0, tokenizers 0.23.3, trl 1.16.0, peft 0.21.2': WRITERS' order, whatever the record's."""
    return ", ".join(f"{name} {version}" for name, version in in_order(saved.written_by, WRITERS) if version)


def _generation_config_mismatches(config: SavedGenerationConfig, eos_id: int, eos: str) -> list[dict]:
    found = config.eos_token_id
    covered = eos_id in found if isinstance(found, list) else found == eos_id
    if covered:
        return []
    return [{"check": "generation_config", "file": config.file, "field": "eos_token_id",
             "trained": _token(eos, eos_id), "saved": found,
             "written_by": config.transformers_version}]


def _first_difference(a, b) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def _excerpt(text: str, at: int, width: int = 24) -> str:
    start = max(0, at - width)
    return ("..." if start else "") + repr(text[start:at + width]) + ("..." if at + width < len(text) else "")


def describe(row: dict, saved: Saved) -> str:
    """One line: file, field, trained vs saved value, the library versions that wrote it, the consequence."""
    by = f"transformers {row['written_by']}" if row.get("written_by") else writers(saved)
    return (f"{row['file']} {row['field']}: trained {_shown(row['trained'])}, saved {_shown(row['saved'])} "
            f"(written by {by or 'unrecorded libraries'}): {CONSEQUENCE[row['check']]}")


def _shown(value) -> str:
    return value if isinstance(value, str) else repr(value)
