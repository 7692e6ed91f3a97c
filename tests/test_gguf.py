"""SmolLM2's GGUF conversion: the same checkpoint as transformers' loader makes, keyed by what made it."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.recipe import profiles
from harness.recipe.models import Checkpoint, ModelInputError, ModelUnavailable, smollm2

ROOT = Path(__file__).resolve().parents[1]


def _installed_gguf() -> Path:
    try:
        return smollm2.locate_gguf(None)
    except ModelUnavailable as error:
        pytest.skip(f"cannot compare conversions without the SmolLM2 GGUF: {error}")


def _reference_converter():
    """transformers' loader, as convert_gguf used it before issue 14 (kept in the benchmark that times both)."""
    spec = importlib.util.spec_from_file_location("gguf_conversion", ROOT / "benchmarks" / "gguf_conversion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.convert_with_transformers


@pytest.mark.slow
def test_conversion_writes_the_checkpoint_transformers_loader_writes(tmp_path, monkeypatch):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    monkeypatch.delenv(smollm2.GGUF_ENV, raising=False)
    gguf = _installed_gguf()
    reference, converted = tmp_path / "transformers", tmp_path / "harness"
    _reference_converter()(gguf, reference)
    smollm2.convert_gguf(gguf, converted)

    expected, actual = load_file(reference / "model.safetensors"), load_file(converted / "model.safetensors")
    assert sorted(actual) == sorted(expected)
    for name, tensor in expected.items():
        assert (actual[name].dtype, actual[name].shape) == (tensor.dtype, tensor.shape), name
        difference = (actual[name].float() - tensor.float()).abs().max().item()
        assert difference == 0, f"{name}: max abs difference {difference}"
    for saved in ("config.json", "generation_config.json", "tokenizer_config.json"):
        assert json.loads((converted / saved).read_text()) == json.loads((reference / saved).read_text()), saved

    expected_tokenizer = AutoTokenizer.from_pretrained(reference)
    actual_tokenizer = AutoTokenizer.from_pretrained(converted)
    assert actual_tokenizer.get_vocab() == expected_tokenizer.get_vocab()
    merges = [json.loads((path / "tokenizer.json").read_text())["model"]["merges"] for path in (reference, converted)]
    assert len(merges[0]) == 48_900 and merges[1] == merges[0]
    assert actual_tokenizer.added_tokens_decoder == expected_tokenizer.added_tokens_decoder
    for role in ("eos_token", "bos_token", "unk_token", "pad_token", "padding_side", "chat_template"):
        assert getattr(actual_tokenizer, role) == getattr(expected_tokenizer, role), role
    assert "<|im_start|>assistant" in actual_tokenizer.chat_template


def test_q_and_k_rows_are_unpermuted_exactly_as_transformers_does():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    config = SimpleNamespace(num_attention_heads=9, num_key_value_heads=3)
    processor = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    rng = np.random.default_rng(0)
    for name, rows in (("blk.0.attn_q.weight", 576), ("blk.0.attn_k.weight", 192)):
        weights = rng.standard_normal((rows, 576)).astype(np.float32)
        expected = processor.process(weights=weights, name=name).weights
        assert np.array_equal(smollm2._unpermute_attention(weights, name, config), expected), name
        assert not np.array_equal(expected, weights)
    values = rng.standard_normal((192, 576)).astype(np.float32)
    assert smollm2._unpermute_attention(values, "blk.0.attn_v.weight", config) is values


def test_missing_gguf_metadata_is_named_with_the_file():
    metadata = {key: "llama" for key in smollm2.LLAMA_CONFIG_KEYS}
    del metadata["llama.attention.head_count_kv"]
    with pytest.raises(ModelInputError, match=r"^model\.gguf: GGUF metadata lacks llama\.attention\.head_count_kv$"):
        smollm2._llama_config_dict(metadata, {}, Path("model.gguf"))


def test_header_reader_reads_what_gguf_reader_reads(monkeypatch):
    from gguf import GGUFReader

    monkeypatch.delenv(smollm2.GGUF_ENV, raising=False)
    gguf = _installed_gguf()
    metadata, tensors = smollm2.read_gguf(gguf)
    reader = GGUFReader(gguf)
    scalars = {key: field.contents() for key, field in reader.fields.items()
               if not key.startswith("GGUF.") and field.types[0].name != "ARRAY"}
    assert {key: metadata[key] for key in scalars} == scalars
    assert metadata["tokenizer.ggml.tokens"] == 49_152  # string arrays are counted, not decoded
    assert list(tensors) == [tensor.name for tensor in reader.tensors]
    for tensor in reader.tensors:
        ggml_type, rows = tensors[tensor.name]
        assert ggml_type == tensor.tensor_type, tensor.name
        assert np.array_equal(rows.view(tensor.data.dtype), tensor.data), tensor.name  # shape and bytes


def test_a_file_that_is_not_gguf_is_named(tmp_path):
    fake = tmp_path / "weights.gguf"
    fake.write_bytes(b"PK\3\4" + b"\0" * 64)
    with pytest.raises(ModelInputError, match=f"{fake}: not a little-endian GGUF v2/v3 file"):
        smollm2.read_gguf(fake)


def _converted_directory(tmp_path, monkeypatch) -> Path:
    """The directory the smollm2 profile converts into (the conversion itself stubbed out)."""
    gguf = tmp_path / smollm2.GGUF_NAME
    gguf.write_bytes(b"GGUF")
    directories = []
    def record(path, directory, *rest):
        directories.append(directory)
        return Checkpoint(directory, "converted", smollm2.SMOLLM2_SPECIAL_TOKENS)

    monkeypatch.setattr(smollm2, "convert_gguf", record)
    profiles.PROFILES["smollm2"].build_checkpoint(
        profiles.ModelOptions(models_dir=tmp_path / "models", smollm2_gguf=str(gguf)))
    return directories[0]


def test_converted_checkpoint_is_keyed_by_sha256_converter_and_library_versions(tmp_path, monkeypatch):
    from importlib.metadata import version

    name = _converted_directory(tmp_path, monkeypatch).name
    assert name == (f"gguf-{smollm2.GGUF_SHA256[:12]}-c{smollm2.CONVERTER_VERSION}"
                    f"-transformers{version('transformers')}-gguf{version('gguf')}")

    installed = dict(transformers=version("transformers"), gguf=version("gguf"))
    for library in installed:
        other = {**installed, library: "0.0.1"}
        monkeypatch.setattr("importlib.metadata.version", other.__getitem__)
        assert _converted_directory(tmp_path, monkeypatch).name != name, library
    monkeypatch.setattr("importlib.metadata.version", installed.__getitem__)
    monkeypatch.setattr(smollm2, "CONVERTER_VERSION", smollm2.CONVERTER_VERSION + 1)
    assert _converted_directory(tmp_path, monkeypatch).name != name


def test_profile_refuses_a_gguf_with_the_wrong_sha256(tmp_path):
    fake = tmp_path / smollm2.GGUF_NAME
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    options = profiles.ModelOptions(models_dir=tmp_path / "models", smollm2_gguf=str(fake))
    with pytest.raises(ModelInputError, match=f"{fake}: sha256 .* is not the expected {smollm2.GGUF_SHA256}"):
        profiles.PROFILES["smollm2"].build_checkpoint(options)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
