"""A tiny Phi-3: random weights (fixed seed) and a locally trained tokenizer with Phi-3's layout.

The tokenizer is built with the `tokenizers` library the way Phi-3's is shaped: `<unk>` 0,
`<s>` 1, `</s>` 2, 256 byte-fallback tokens, a BPE vocabulary (trained here on the bundled Yoda
sentences, so that the tiny model sees short sequences), reserved filler up to id 32000, then
Phi-3's eleven added tokens at 32000-32010, and Phi-3's chat template verbatim. PAD == EOS as
Phi-3 ships it: the recipe's `pad = unk` fix is the recipe's job, not baked in here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from harness.recipe.models import Checkpoint, building
from harness.recipe.models.phi3 import PHI3_ADDED_TOKENS, PHI3_CHAT_TEMPLATE, PHI3_SPECIAL_TOKENS

BASE_VOCAB_SIZE = 32000
LEARNED_VOCAB_SIZE = 2000
FILLER_PREFIX = "<|reserved_"
# Bump when the builder changes, so cached tiny checkpoints are rebuilt (5: the turn head).
BUILDER_VERSION = 5

# Random init choices that make LoRA-only training of a random model learn the task's shape
# within the CPU budget (measured, docs/tiny.md): a head wide enough in logit range (std 0.1 at
# 256 wide) that an adapter can make the model confident of a token, where the default 0.02 caps
# any logit gap near 2.5 nats; and near-zero residual output projections (as in zero-init
# residual schemes) so the frozen random branches do not drown what the adapters write into
# the residual stream.
LM_HEAD_STD = 0.1
RESIDUAL_OUTPUT_STD = 5e-4

# On two CPU cores a training step costs what trl's log-probabilities over the 32,064-token head
# cost (about 95 % of the step); the layers are nearly free, so the model is as wide and deep as
# learning needs (2 x 128 learned no stopping; 4 x 256 stopped for one seed in three; 6 x 256
# for three seeds in three). Phi-3's vocabulary size and special
# ids are kept so label/EOS/template checks see the real ids.
TINY_CONFIG = dict(
    vocab_size=32064,
    hidden_size=256,
    intermediate_size=1024,
    num_hidden_layers=6,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=512,
    original_max_position_embeddings=512,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=32000,
    pad_token_id=32000,
    torch_dtype="float32",
)


# What a profile's [model] table may set for the tiny source (docs/profiles.md): the shape, as
# Phi3Config's own fields (key/value heads = attention heads), and whether layer 0's head 0 is wired
# to say whose turn it is. A random base cannot tell a user's turn from the assistant's, and
# whether rank-8 adapters learned that in 348 steps (and so learned to stop after their own turn)
# depended on the seed: 4 of 10 held every invariant without the wired head, 18 of 18 with it
# (docs/tiny.md). Anything but the shipped defaults is named in the checkpoint's identity
# (`tag`), so its runs share no cache entry and no baseline comparison with the shipped model.
SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads")


@dataclass(frozen=True)
class TinySettings:
    """The tiny model's [model] keys; the defaults build the shipped checkpoint."""

    num_hidden_layers: int = TINY_CONFIG["num_hidden_layers"]
    hidden_size: int = TINY_CONFIG["hidden_size"]
    intermediate_size: int = TINY_CONFIG["intermediate_size"]
    num_attention_heads: int = TINY_CONFIG["num_attention_heads"]
    turn_head: bool = True

    @classmethod
    def of(cls, settings: dict) -> "TinySettings":
        """From a profile's [model] keys (source, family and tokens aside); a bad one is a ValueError
        whose message starts with the key."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in settings.items() if key not in ("source", "family", "tokens")}
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"{key}: unknown key of a tiny model (known: {', '.join(sorted(known))})")
            if key == "turn_head":
                if not isinstance(value, bool):
                    raise ValueError(f"turn_head: expected true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{key}: expected a positive integer, got {value!r}")
        tiny = cls(**values)
        if tiny.hidden_size % tiny.num_attention_heads:
            raise ValueError(f"hidden_size: {tiny.hidden_size} is not a multiple of num_attention_heads "
                             f"({tiny.num_attention_heads})")
        return tiny

    def shape(self) -> dict[str, int]:
        return {**{key: getattr(self, key) for key in SHAPE_KEYS}, "num_key_value_heads": self.num_attention_heads}

    def tag(self) -> str:
        """'' for the shipped model, '-12x256x1024x4' for another shape, '-noturn' without the turn head."""
        shipped = TinySettings()
        tag = "" if self.shape() == shipped.shape() else "-" + "x".join(str(getattr(self, key)) for key in SHAPE_KEYS)
        return tag + ("" if self.turn_head else "-noturn")


# Residual-stream dimensions the wired turn head uses (see wire_turn_head).
CONSTANT_DIM, MARKER_DIM, SIGN_DIM, TURN_DIM = 0, 1, 2, 3

def recency_pair(head_dim: int, rope_theta: float, span: int) -> int:
    """The RoPE pair whose angle turns by about 1.5 rad over `span` positions.

    A query and key on that pair alone score cos(angle x distance): highest for the nearest key,
    still above zero at the far end of a packed row.
    """
    import math

    angles = [rope_theta ** (-2 * pair / head_dim) for pair in range(head_dim // 2)]
    return min(range(len(angles)), key=lambda pair: abs(math.log(angles[pair] * span / 1.5)))


def _rope_theta(config) -> float:
    """RoPE's base: `rope_parameters` in transformers 5, `rope_theta` before."""
    parameters = getattr(config, "rope_parameters", None) or {}
    return float(parameters.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0)


def wire_turn_head(model, tokenizer, amplitude: float = 0.32, sharpness: float = 3.0, turn_scale: float = 1.0) -> None:
    """Wire layer 0's head 0 to attend to the latest role marker and write whose turn it is.

    Every embedding gets a constant component (so every token has the same query), the role
    markers a marker component (the only keys that match it) and a sign (+ assistant, - user);
    with the query and key on one slowly rotating RoPE pair the score falls with distance, so the
    latest marker wins the softmax, and the head copies its sign into TURN_DIM.
    """
    embed = model.model.embed_tokens.weight
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    half = head_dim // 2
    pair = recency_pair(head_dim, _rope_theta(model.config), span=64)
    embed[:, CONSTANT_DIM] += amplitude
    for token, sign in (("<|assistant|>", 1.0), ("<|user|>", -1.0), ("<|system|>", -1.0)):
        index = tokenizer.convert_tokens_to_ids(token)
        embed[index, MARKER_DIM] += amplitude
        embed[index, SIGN_DIM] += sign * amplitude
    hidden = model.config.hidden_size
    attention = model.model.layers[0].self_attn
    qkv = attention.qkv_proj.weight  # rows: q (hidden), k (hidden), v (hidden); head 0 first in each
    for row in (pair, pair + half):
        qkv[row].zero_()
        qkv[hidden + row].zero_()
    qkv[pair, CONSTANT_DIM] = sharpness
    qkv[hidden + pair, MARKER_DIM] = sharpness
    qkv[2 * hidden].zero_()
    qkv[2 * hidden, SIGN_DIM] = 1.0
    attention.o_proj.weight[:, 0] = 0.0
    attention.o_proj.weight[TURN_DIM, 0] = turn_scale / 16


def _training_corpus() -> list[str]:
    from harness.recipe.data import load_rows

    rows, _ = load_rows("bundled")
    return [text for row in rows for text in (row["sentence"], row["translation_extra"])]


def build_phi3_style_tokenizer(corpus: list[str] | None = None):
    """A `PreTrainedTokenizerFast` with Phi-3's special-token ids and chat template."""
    from tokenizers import Tokenizer, decoders, models, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = corpus if corpus is not None else _training_corpus()
    trainer_tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    # Trained without the word-start marker on each sentence's first word: in the chat template a
    # message always follows "\n", never the start of the input, so that is how its first word is
    # cut at run time. Trained with it, every turn's first word would fall apart into letters.
    trainer_tokenizer.pre_tokenizer = _pre_tokenizer(prepend_scheme="never")
    trainer_tokenizer.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=LEARNED_VOCAB_SIZE, show_progress=False)
    )
    learned = trainer_tokenizer.get_vocab(with_added_tokens=False)
    merges = _merges_of(trainer_tokenizer)

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for token, _ in sorted(learned.items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    while len(vocab) < BASE_VOCAB_SIZE:
        vocab[f"{FILLER_PREFIX}{len(vocab)}|>"] = len(vocab)

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.pre_tokenizer = _pre_tokenizer(prepend_scheme="first")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.add_special_tokens(["<unk>", "<s>", "</s>"])
    tokenizer.add_special_tokens(list(PHI3_ADDED_TOKENS))

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=4096,
    )
    fast.chat_template = PHI3_CHAT_TEMPLATE
    return fast


def _pre_tokenizer(prepend_scheme: str):
    """SentencePiece-style word pieces (Phi-3's `▁` marker) with punctuation split off.

    Punctuation is its own token so that "week." and "week," share the word: Yoda's reordering
    moves words between the middle and the end of a sentence, where the marks change.
    """
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend_scheme),
        pre_tokenizers.Punctuation("isolated"),
    ])


def filler_ids(tokenizer) -> list[int]:
    """Ids of the reserved filler between the learned vocabulary and Phi-3's added tokens."""
    return [index for token, index in tokenizer.get_vocab().items() if token.startswith(FILLER_PREFIX)]


def _merges_of(tokenizer) -> list[tuple[str, str]]:
    import json

    model = json.loads(tokenizer.to_str())["model"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]


def build_tiny_checkpoint(directory: Path, settings: TinySettings = TinySettings(), seed: int = 0) -> Checkpoint:
    """Build (once) and return the tiny model's checkpoint directory."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    if (directory / "config.json").exists():
        return Checkpoint(directory, "tiny-phi3", PHI3_SPECIAL_TOKENS)
    tokenizer = build_phi3_style_tokenizer()
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(Phi3Config(**{**TINY_CONFIG, **settings.shape()}))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.normal_(0.0, RESIDUAL_OUTPUT_STD)
            layer.mlp.down_proj.weight.normal_(0.0, RESIDUAL_OUTPUT_STD)
        model.lm_head.weight.normal_(0.0, LM_HEAD_STD)
        # A trained model never predicts vocabulary it never saw; a random head would, since
        # the frozen head's rows cannot be trained down. Zero logits keep the filler out.
        model.lm_head.weight[filler_ids(tokenizer)] = 0.0
        if settings.turn_head:
            wire_turn_head(model, tokenizer)
    with building(directory) as partial:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    return Checkpoint(directory, "tiny-phi3", PHI3_SPECIAL_TOKENS)
