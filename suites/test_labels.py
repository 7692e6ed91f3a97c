"""Labels and EOS on the trainer's real collated batch; packing fingerprints; completion-only masking."""

from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harness.recipe.metrics import expected_optimizer_steps


def _rows(batch):
    return list(zip(batch["input_ids"], batch["labels"]))


@pytest.mark.yoda_check(headline="EOS never labelled", settings=("tokenizer.pad_token", "training.packing"))
@pytest.mark.yoda_structural
def test_every_eos_keeps_its_label(record, run_artifacts):
    eos = record.tokens.eos_id
    batch = run_artifacts("collated_batch.json")
    masked = [(r, i) for r, (ids, labels) in enumerate(_rows(batch)) for i, t in enumerate(ids)
              if t == eos and labels[i] != eos]
    total = sum(ids.count(eos) for ids in batch["input_ids"])
    assert total > 0, "the collated batch holds no EOS token at all: the chat template's EOS was not added"
    assert not masked, (
        f"{len(masked)} of {total} EOS tokens have label -100 (first at row {masked[0][0]}, position "
        f"{masked[0][1]}): the collator masked EOS — with PAD == EOS the model never learns to stop"
    )


@pytest.mark.yoda_check(headline="PAD == EOS")
@pytest.mark.yoda_structural
def test_pad_token_is_not_eos(record):
    if record.recipe_config.tokenizer.pad_token == "as_shipped":
        pytest.skip("this recipe variant keeps the tokenizer's shipped PAD == EOS on purpose (tokenizer.pad_token="
                    "'as_shipped'); whether EOS still keeps its labels is test_every_eos_keeps_its_label's question")
    tokens = record.tokens
    assert tokens.pad_id != tokens.eos_id, (
        f"pad token {tokens.pad!r} is the EOS token: the recipe's `pad_token = unk_token` fix was lost"
    )


@pytest.mark.yoda_structural
def test_labels_equal_inputs_where_not_masked(run_artifacts):
    batch = run_artifacts("collated_batch.json")
    for row, (ids, labels) in enumerate(_rows(batch)):
        wrong = [i for i, (t, l) in enumerate(zip(ids, labels)) if l != -100 and l != t]
        assert not wrong, f"row {row}: labels differ from input_ids at positions {wrong[:5]}"


def _expects_wrapped_packing(training) -> bool:
    """Wrapped packing is asked for, or packing is on and its strategy left to the library: the
    recipe was written when wrapped was trl's only packing (trl 0.19 changed the default)."""
    return training.packing and training.packing_strategy in ("wrapped", None)


@pytest.mark.yoda_check(headline="packing no longer wrapped",
                        settings=("training.packing_strategy", "training.packing", "training.max_length"))
@pytest.mark.yoda_structural
def test_packed_rows_are_exactly_max_length(record, run_artifacts):
    training = record.recipe_config.training
    if not _expects_wrapped_packing(training):
        pytest.skip("the recipe config does not ask for wrapped packing")
    batch = run_artifacts("collated_batch.json")
    max_length = training.max_length
    lengths = sorted({len(ids) for ids in batch["input_ids"]})
    padded = sum(row.count(0) for row in batch["attention_mask"]) if "attention_mask" in batch else 0
    rows, batch_size = len(batch["input_ids"]), record.training.train_batch_size
    if len(lengths) == 1 and padded == 0 and rows == batch_size:
        # A full batch of rows of one length without padding is wrapped packing; only the length can
        # be wrong. (Padding-free 'bfd' flattens the whole batch into one row of no fixed length.)
        assert lengths == [max_length], (
            f"wrapped rows are {lengths[0]} tokens long, not the recipe's max_length {max_length}: the max_length "
            "setting did not reach SFTConfig (a renamed argument, as max_seq_length -> max_length in trl 0.20?)"
        )
        return
    assert False, (
        f"{rows} collated rows (batch size {batch_size}) of lengths {lengths} with "
        f"{padded} padded positions; 'wrapped' packing gives a full batch of rows of exactly {max_length}: "
        "the packing strategy changed (trl 0.19 made padding-free 'ffd' the default, renamed 'bfd' in 0.20)"
    )


@pytest.mark.yoda_check(headline="packed rows are not wrapped packing's",
                        settings=("training.packing_strategy", "training.packing", "training.max_length"))
@pytest.mark.yoda_structural
def test_packing_cuts_the_rows_this_trl_is_known_to_cut(record):
    config, training = record.recipe_config.training, record.training
    if not _expects_wrapped_packing(config):
        pytest.skip("the recipe config does not ask for wrapped packing, the packing the rows are predicted for")
    rows = training.packed_rows_predicted
    added = training.packing_added_tokens
    separators = f" and the {added} tokens this trl adds between examples" if added else ""
    assert training.packed_rows == rows, (
        f"the trainer's data set holds {training.packed_rows} packed rows; wrapped packing of "
        f"{training.templated_tokens} templated tokens{separators} into rows of {config.max_length} gives "
        f"{rows} (harness.recipe.compat.Packing, this trl's groups and shorter rows): the packing strategy or the "
        "tokenized text changed"
    )


@pytest.mark.yoda_check(headline="step count is not the packed rows'",
                        settings=("training.per_device_train_batch_size", "training.num_train_epochs",
                                  "training.gradient_accumulation_steps"))
def test_optimizer_steps_match_the_packing(record):
    config, training = record.recipe_config.training, record.training
    # Each optimizer step takes one batch on every process (torchrun / accelerate launch).
    batch = training.train_batch_size * record.processes
    expected = expected_optimizer_steps(training.packed_rows, batch, config.num_train_epochs,
                                        config.gradient_accumulation_steps)
    assert training.global_step == expected, (
        f"{training.global_step} optimizer steps; {training.packed_rows} packed rows at a global batch of "
        f"{batch} over {config.num_train_epochs} epochs give {expected}: the trainer did not take the batches "
        "packing made"
    )


@pytest.mark.yoda_check(headline="completion-only masking wrong")
@pytest.mark.yoda_structural
def test_completion_only_masks_the_prompt(run_artifacts):
    batch = run_artifacts("completion_only_batch.json")
    if "unsupported" in batch:
        pytest.skip(batch["unsupported"])
    assert batch["prompt_lengths"], "no completion-only rows were recorded"
    for row, (ids, labels) in enumerate(_rows(batch)):
        prompt, length = batch["prompt_lengths"][row], batch["sequence_lengths"][row]
        # The boundary token may merge across prompt and completion; trl then starts the
        # completion where the two tokenizations diverge, so leave one token either side.
        leaked = [i for i in range(prompt - 1) if labels[i] != -100]
        lost = [i for i in range(prompt + 1, length) if labels[i] != ids[i]]
        assert not leaked, f"row {row}: prompt tokens at {leaked[:5]} are trained on with completion_only_loss"
        assert not lost, f"row {row}: completion tokens at {lost[:5]} are masked with completion_only_loss"


conversation_text = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N", "P", "Zs"), blacklist_characters="<>|"),
    min_size=1, max_size=60,
).map(lambda s: " ".join(s.split())).filter(bool)


@pytest.mark.yoda_check(headline="EOS lost in collation")
@pytest.mark.yoda_structural
@pytest.mark.yoda_slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(conversation_text, conversation_text), min_size=1, max_size=6))
def test_collation_keeps_eos_and_labels_for_any_conversation(live, pairs):
    from harness.recipe.compat import packs_wrapped
    from harness.recipe.qlora_sft import expected_packing, prepare

    if not packs_wrapped(live.trainer.args):
        pytest.skip("this trainer does not pack 'wrapped', the packing the expectation is modelled on; "
                    "test_packed_rows_are_exactly_max_length says whether the recipe asked for it")
    examples = [{"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]} for u, a in pairs]
    expected = expected_packing(live.trainer, examples)
    # trl <= 0.14 drops every shorter row: conversations shorter than one row make no batch at all.
    assume(expected.rows > 0)
    rows = prepare(live.trainer, examples)
    assert len(rows) == expected.rows, (
        f"this trl's packing cut these {len(examples)} conversations into {len(rows)} rows; harness.recipe.compat.Packing "
        f"predicts {expected.rows}: the packing changed"
    )
    batch = live.trainer.data_collator(rows)
    eos = live.tokenizer.eos_token_id
    template_eos = sum(_eos_in_template(live.tokenizer, example["messages"]) for example in examples)
    assert template_eos >= len(examples), "the chat template ends a conversation without EOS"
    # Packing and collation keep every token given to the packer (the templated conversations and
    # the EOS this trl appends between them: harness.recipe.compat.Packing), in any order, adding none;
    # they lose only the shorter rows this trl drops (SmolLM2's template writes EOS per turn).
    collated = Counter(token for row in _unpadded(batch) for token in row)
    added, lost = collated - expected.tokens, expected.tokens - collated
    assert not added, (
        f"the collated batch holds tokens neither the template nor this trl's packing writes for these "
        f"{len(examples)} conversations: {dict(added.most_common(5))} (EOS: {added[eos]})"
    )
    assert sum(lost.values()) == expected.dropped, (
        f"{sum(lost.values())} tokens of these {len(examples)} conversations are missing from the collated batch, "
        f"{lost[eos]} of them EOS (of {expected.tokens[eos]}); this trl's packing drops {expected.dropped} "
        "(the shorter rows it does not keep)"
    )
    for row_ids, row_labels in zip(_unpadded(batch), _unpadded(batch, "labels")):
        for token, label in zip(row_ids, row_labels):
            assert label == -100 or label == token
            if token == eos:
                assert label == eos, "an EOS token lost its label in collation"


def _unpadded(batch, key: str = "input_ids") -> list[list[int]]:
    """Each collated row of `key` without the positions its attention mask pads (PAD may be EOS)."""
    rows = batch[key].tolist()
    if "attention_mask" not in batch:
        return rows
    return [[v for v, m in zip(values, mask) if m] for values, mask in zip(rows, batch["attention_mask"].tolist())]


def _eos_in_template(tokenizer, messages: list[dict]) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"].count(tokenizer.eos_token_id)
