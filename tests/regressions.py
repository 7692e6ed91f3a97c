"""Regressions injected through the libraries' public seams, the way an upgrade would change them.

Loaded into a `pytest suites` run with `-p tests.regressions` and selected by
$YODA_HARNESS_INJECT. Each function below patches one library behaviour at pytest_configure,
before the recipe runs; `tests/test_regressions.py` asserts that the matching suite fails.
"""

from __future__ import annotations

import functools
import os

import pytest


def untemplated_instruction_data():
    """Newer trl stopped applying the chat template: training text lacks the role tokens."""
    from trl.trainer import sft_trainer

    original = sft_trainer._tokenize

    @functools.wraps(original)
    def plain_text(processing_class, input, *args, **kwargs):
        if isinstance(input, list) and input and isinstance(input[0], dict):
            text = "\n".join(message["content"] for message in input) + processing_class.eos_token
            return processing_class(text=text, add_special_tokens=False)
        return original(processing_class, input, *args, **kwargs)

    sft_trainer._tokenize = plain_text


def eos_masked_in_labels():
    """The collator masks pad-token labels, and the trainer pads with EOS: EOS loses its label."""
    from trl.trainer import sft_trainer

    collator_call = sft_trainer.DataCollatorForLanguageModeling.torch_call

    def masking_call(self, examples):
        output = collator_call(self, examples)
        output["labels"][output["input_ids"] == self.pad_token_id] = -100
        return output

    sft_trainer.DataCollatorForLanguageModeling.torch_call = masking_call
    trainer_init = sft_trainer.SFTTrainer.__init__

    def pad_with_eos(self, *args, **kwargs):
        trainer_init(self, *args, **kwargs)
        self.data_collator.pad_token_id = self.processing_class.eos_token_id

    sft_trainer.SFTTrainer.__init__ = pad_with_eos


def packing_strategy_changed():
    """trl 0.20: packing silently became another strategy ('bfd') unless asked otherwise."""
    from trl import SFTConfig

    post_init = SFTConfig.__post_init__

    def force_bfd(self):
        post_init(self)
        self.packing_strategy = "bfd"

    SFTConfig.__post_init__ = force_bfd


def packing_drops_shorter_rows():
    """Packing drops each group's shorter last row (trl <= 0.14's ConstantLengthDataset did) in a
    release that keeps it: the data's last tokens never train, and one row fewer is packed."""
    from trl.trainer import sft_trainer

    pack_dataset = sft_trainer.pack_dataset

    def dropping(dataset, seq_length, *args, **kwargs):
        packed = pack_dataset(dataset, seq_length, *args, **kwargs)
        return packed.with_format(None).filter(lambda row: len(row["input_ids"]) == seq_length)

    sft_trainer.pack_dataset = dropping


def max_length_ignored():
    """A renamed `SFTConfig` argument (as `max_seq_length` -> `max_length` in trl 0.20): the value
    the recipe passes no longer arrives, and rows are packed to the new default instead."""
    from trl import SFTConfig

    post_init = SFTConfig.__post_init__

    def default_length(self):
        post_init(self)
        self.max_length = 1024  # trl's default

    SFTConfig.__post_init__ = default_length


def adapters_frozen_by_trainer():
    """trl < 0.23.1 prepared an already-PEFT model for k-bit training again, freezing the adapters."""
    from peft import PeftModel, prepare_model_for_kbit_training
    from trl.trainer import sft_trainer

    trainer_init = sft_trainer.SFTTrainer.__init__

    def freezing_init(self, model=None, *args, **kwargs):
        if isinstance(model, PeftModel):
            prepare_model_for_kbit_training(model)  # sets requires_grad=False on every parameter
        trainer_init(self, model, *args, **kwargs)

    sft_trainer.SFTTrainer.__init__ = freezing_init


def generate_ignores_eos():
    """A generate() that no longer honours eos_token_id: outputs run to max_new_tokens."""
    from transformers import GenerationMixin

    generate = GenerationMixin.generate

    @functools.wraps(generate)
    def without_eos(self, *args, **kwargs):
        kwargs["eos_token_id"] = None
        self.generation_config.eos_token_id = None
        return generate(self, *args, **kwargs)

    GenerationMixin.generate = without_eos


def chat_template_drift():
    """A tokenizer upgrade that renders the template differently (a default system turn appears)."""
    from transformers import PreTrainedTokenizerBase

    apply = PreTrainedTokenizerBase.apply_chat_template

    @functools.wraps(apply)
    def with_system_turn(self, conversation, *args, **kwargs):
        if conversation and isinstance(conversation[0], dict) and conversation[0].get("role") != "system":
            conversation = [{"role": "system", "content": "You are a helpful assistant."}] + list(conversation)
        return apply(self, conversation, *args, **kwargs)

    PreTrainedTokenizerBase.apply_chat_template = with_system_turn


def lora_rank_ignored():
    """A peft change that ignores the requested rank (r=4 instead of the recipe's 8)."""
    import peft

    lora_config = peft.LoraConfig

    class HalfRank(lora_config):
        def __post_init__(self):
            self.r = 4
            super().__post_init__()

    peft.LoraConfig = HalfRank


def lora_scaling_halved():
    """A peft change that halves the LoRA scaling (reads lora_alpha 8 for the recipe's 16): the
    parameter count is unchanged, the loss still falls."""
    import peft

    lora_config = peft.LoraConfig

    class HalfScaling(lora_config):
        def __post_init__(self):
            self.lora_alpha = self.lora_alpha / 2
            super().__post_init__()

    peft.LoraConfig = HalfScaling


def adapter_saved_under_other_names():
    """A peft release whose save writes the adapter under keys its own load does not look for (the
    class of bug where a prefix or adapter name is handled on one side only): the load warns about
    missing keys and leaves the adapters as initialised, so the deployed model is the base model."""
    import peft.peft_model

    state_dict = peft.peft_model.get_peft_model_state_dict

    @functools.wraps(state_dict)
    def renamed(*args, **kwargs):
        return {key.replace("lora_", "lora-"): value for key, value in state_dict(*args, **kwargs).items()}

    peft.peft_model.get_peft_model_state_dict = renamed


def tokenizer_eos_changed():
    """A tokenizer release that reads another EOS from the same files (`<|end|>` for `<|endoftext|>`)."""
    from transformers import PreTrainedTokenizerBase

    from_pretrained = PreTrainedTokenizerBase.from_pretrained.__func__

    def misread(cls, *args, **kwargs):
        tokenizer = from_pretrained(cls, *args, **kwargs)
        if tokenizer.eos_token == "<|endoftext|>":
            tokenizer.eos_token = "<|end|>"
        return tokenizer

    PreTrainedTokenizerBase.from_pretrained = classmethod(misread)


def generate_crashes():
    """A generate() that refuses what the harness passes (as transformers 4.56 did with token_type_ids)."""
    from transformers import GenerationMixin

    def refuse(self, *args, **kwargs):
        raise ValueError("The following `model_kwargs` are not used by the model: ['token_type_ids'] (injected)")

    GenerationMixin.generate = refuse


def learning_rate_halved():
    """A changed library default behind the config's back: the trainer trains at half the recipe's
    learning rate (the config, and so the run's inputs, still say 3e-4). Nothing breaks; the losses
    change: a comparison must see it, across devices too."""
    from trl import SFTConfig

    post_init = SFTConfig.__post_init__

    def halve(self):
        post_init(self)
        self.learning_rate = self.learning_rate / 2

    SFTConfig.__post_init__ = halve


def packing_crashes():
    """trl's packing of the conversational data fails inside (as a KeyError: 'text' under trl's own
    ValueError did on an old release set): the recipe crashes in its trainer phase."""
    from trl.trainer import sft_trainer

    def crash(dataset, seq_length, *args, **kwargs):
        try:
            raise KeyError("text")
        except KeyError as error:
            raise ValueError("Error occurred while packing the dataset (injected)") from error

    sft_trainer.pack_dataset = crash


# ------------------------------------------------------------------ at save time: what users deploy
def _saving_with(change):
    """Wrap `SFTTrainer.save_model` (the recipe's step 6): `change(trainer)` runs before the save and
    returns what undoes it, so the trained objects are as they were and only the saved folder differs."""
    from trl.trainer import sft_trainer

    save_model = sft_trainer.SFTTrainer.save_model

    @functools.wraps(save_model)
    def saving(self, output_dir=None, *args, **kwargs):
        undo = change(self)
        try:
            return save_model(self, output_dir, *args, **kwargs)
        finally:
            undo()

    sft_trainer.SFTTrainer.save_model = saving


def _end_of_turn(tokenizer) -> str:
    """Phi-3's end-of-turn marker: the token a release that confuses the two would write as EOS."""
    return "<|end|>" if tokenizer.convert_tokens_to_ids("<|end|>") not in (None, tokenizer.unk_token_id) else tokenizer.bos_token


def saved_eos_changed():
    """A release whose save writes another EOS into the saved tokenizer_config.json (the end-of-turn
    marker `<|end|>` for `<|endoftext|>`): the trained tokenizer is right, the deployed one is not."""
    def change(trainer):
        tokenizer = trainer.processing_class
        trained = tokenizer.eos_token
        tokenizer.eos_token = _end_of_turn(tokenizer)
        return lambda: setattr(tokenizer, "eos_token", trained)

    _saving_with(change)


def saved_pad_changed():
    """A release whose save writes the pad token the tokenizer shipped with (PAD == EOS) instead of the
    one the recipe set (UNK)."""
    def change(trainer):
        tokenizer = trainer.processing_class
        trained = tokenizer.pad_token
        tokenizer.pad_token = tokenizer.eos_token
        return lambda: setattr(tokenizer, "pad_token", trained)

    _saving_with(change)


def saved_template_changed():
    """A release whose save writes another chat template (one that begins every rendering with BOS)."""
    def change(trainer):
        tokenizer = trainer.processing_class
        trained = tokenizer.chat_template
        tokenizer.chat_template = "{{ bos_token }}" + trained
        return lambda: setattr(tokenizer, "chat_template", trained)

    _saving_with(change)


def saved_generation_config_eos_changed():
    """A release whose save also writes the model's generation config, with the end-of-turn marker as
    its EOS (huggingface/open-r1#663: generation config and tokenizer disagreed on EOS after saving)."""
    import copy

    from trl.trainer import sft_trainer

    save_model = sft_trainer.SFTTrainer.save_model

    @functools.wraps(save_model)
    def saving(self, output_dir=None, *args, **kwargs):
        result = save_model(self, output_dir, *args, **kwargs)
        config = copy.deepcopy(self.model.generation_config)
        config.eos_token_id = self.processing_class.convert_tokens_to_ids(_end_of_turn(self.processing_class))
        config.save_pretrained(output_dir or self.args.output_dir)
        return result

    sft_trainer.SFTTrainer.save_model = saving


INJECTIONS = {
    "learning-rate-halved": learning_rate_halved,
    "packing-crashes": packing_crashes,
    "tokenizer-eos-changed": tokenizer_eos_changed,
    "generate-crashes": generate_crashes,
    "untemplated": untemplated_instruction_data,
    "eos-masked": eos_masked_in_labels,
    "packing-bfd": packing_strategy_changed,
    "packing-drops-shorter-rows": packing_drops_shorter_rows,
    "max-length-ignored": max_length_ignored,
    "adapters-frozen": adapters_frozen_by_trainer,
    "generate-ignores-eos": generate_ignores_eos,
    "template-drift": chat_template_drift,
    "lora-rank": lora_rank_ignored,
    "lora-scaling-halved": lora_scaling_halved,
    "adapter-saved-renamed": adapter_saved_under_other_names,
    "saved-eos": saved_eos_changed,
    "saved-pad": saved_pad_changed,
    "saved-template": saved_template_changed,
    "saved-generation-config-eos": saved_generation_config_eos_changed,
}


def pytest_configure(config):
    _find_failures_without_shrinking()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Patch once the plugin has planned the session (and pinned the profile's CPU kernels, which
    must come before anything imports bitsandbytes), and before any check runs the recipe."""
    name = os.environ.get("YODA_HARNESS_INJECT")
    if name:
        INJECTIONS[name]()


def _find_failures_without_shrinking():
    """A property test that an injection breaks fails on its first bad example; shrinking it to
    a minimal one re-runs the trainer's preparation hundreds of times (minutes on tiny) and tells
    these tests nothing more. Nothing is stored either: each case starts clean."""
    from hypothesis import Phase, settings

    settings.register_profile("injected-regressions", phases=[Phase.explicit, Phase.generate], database=None)
    settings.load_profile("injected-regressions")
