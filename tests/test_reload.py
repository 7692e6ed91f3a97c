"""harness/recipe/reload.py: the reloaded adapter compared with the trained one, exactly and by precision."""

import copy

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from harness.recipe import reload  # noqa: E402


class TwoLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(8, 16)
        self.down = torch.nn.Linear(16, 8)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def adapted(seed: int = 0, alpha: int = 16):
    torch.manual_seed(seed)
    model = peft.get_peft_model(TwoLayers(), peft.LoraConfig(r=4, lora_alpha=alpha, target_modules=["up", "down"]))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # as if trained: B starts at zero
            torch.nn.init.normal_(parameter)
    return model


def test_an_exact_copy_differs_in_nothing():
    trained = adapted()
    record = reload.weights_record(trained, copy.deepcopy(trained))
    assert record == {"tensors": 4, "missing": [], "differing_max_abs": {}, "scaling_differs": {}}


def test_another_adapter_is_named_tensor_by_tensor():
    record = reload.weights_record(adapted(seed=0), adapted(seed=1))
    assert len(record["differing_max_abs"]) == 4 and all(v > 0 for v in record["differing_max_abs"].values())


def test_one_changed_value_is_found():
    trained = adapted()
    reloaded = copy.deepcopy(trained)
    name, parameter = next((n, p) for n, p in reloaded.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        parameter[0, 0] += 1e-6
    assert list(reload.weights_record(trained, reloaded)["differing_max_abs"]) == [name]


def test_a_scaling_the_reload_reads_otherwise_is_named():
    record = reload.weights_record(adapted(alpha=16), adapted(alpha=8))
    assert record["scaling_differs"] == {"base_model.model.up": [4.0, 2.0], "base_model.model.down": [4.0, 2.0]}


def test_a_bf16_trained_adapter_upcast_on_reload_is_cast_back_exactly():
    # trl 1.x trains QLoRA adapters in bf16; peft's reload upcasts them to fp32.
    trained = adapted()
    for name, parameter in trained.named_parameters():
        if "lora_" in name:
            parameter.data = parameter.data.to(torch.bfloat16)
    deployed = copy.deepcopy(trained)
    for name, parameter in deployed.named_parameters():
        parameter.data = parameter.data.float()
    assert reload.precision(trained) == {"adapter": ["bfloat16"], "unquantized": ["float32"]}
    assert reload.precision(deployed) == {"adapter": ["float32"], "unquantized": ["float32"]}
    assert not reload.same_precision(trained, deployed)
    reload.to_training_precision(deployed, trained)
    assert reload.same_precision(trained, deployed)
    assert reload.weights_record(trained, deployed)["differing_max_abs"] == {}


def test_an_adapter_saved_at_lower_precision_than_trained_is_not_the_trained_one():
    trained = adapted()
    rounded = copy.deepcopy(trained)
    for name, parameter in rounded.named_parameters():
        if "lora_" in name:
            parameter.data = parameter.data.to(torch.bfloat16).float()
    assert len(reload.weights_record(trained, rounded)["differing_max_abs"]) == 4


def test_a_tensor_the_reload_lacks_is_missing():
    trained = adapted()
    smaller = peft.get_peft_model(TwoLayers(), peft.LoraConfig(r=4, lora_alpha=16, target_modules=["up"]))
    record = reload.weights_record(trained, smaller)
    assert record["missing"] == ["base_model.model.down.lora_A.default.weight",
                                 "base_model.model.down.lora_B.default.weight"]
