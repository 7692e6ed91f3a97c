"""Step 6, the other half: proof that the reloaded adapter is the trained one.

The recipe reloads the saved adapter onto a fresh 4-bit base with `PeftModel.from_pretrained`, as
users deploy it, and the quality suites score that model. Its precision is the libraries' choice,
and releases choose differently where nothing is broken: peft upcasts a bf16 adapter to fp32 (trl
1.x trains QLoRA adapters in bf16), and transformers 4.x loads the non-quantized layers in float16
when no dtype is given, where `prepare_model_for_kbit_training` then trained them in fp32. Measured
on tiny, either one alone changes 3-13 % of the greedy outputs (docs/tiny.md): a reload check on the
deployed outputs fails for precision, not for a wrong adapter.

So after the deployed model has generated, it is cast to the trained model's dtypes, weight by
weight (what the training side did after the same load). Then it must hold exactly the trained
LoRA weights and scaling, and generate what the trained model did: an invariant no precision choice
of a release can move.
"""

from __future__ import annotations

# Where the agreement check reads the reloaded outputs from (artifacts of the trained stage).
DEPLOYED_FILE = "generations_tuned.jsonl"
TRAINING_PRECISION_FILE = "generations_tuned_at_training_precision.jsonl"


def to_training_precision(reloaded, trained) -> None:
    """Cast every floating weight of `reloaded` to the dtype it has in `trained`: what
    `prepare_model_for_kbit_training` (and trl's bf16 cast of QLoRA adapters) did to the trained
    model after the same load, so the two compute alike from here on."""
    dtypes = floating_dtypes(trained)
    for name, parameter in reloaded.named_parameters():
        if name in dtypes and parameter.dtype != dtypes[name]:
            parameter.data = parameter.data.to(dtypes[name])


def floating_dtypes(model) -> dict:
    """{parameter name: dtype} of the floating weights: LoRA and the non-quantized layers (4-bit
    weights are stored as uint8 and have no precision to compare)."""
    return {name: parameter.dtype for name, parameter in model.named_parameters() if parameter.is_floating_point()}


def precision(model) -> dict[str, list[str]]:
    """The dtypes a model computes in, as recorded: its adapter's and its non-quantized layers'."""
    adapter, base = set(), set()
    for name, dtype in floating_dtypes(model).items():
        (adapter if _is_lora(name) else base).add(str(dtype).removeprefix("torch."))
    return {"adapter": sorted(adapter), "unquantized": sorted(base)}


def same_precision(trained, deployed) -> bool:
    return floating_dtypes(trained) == floating_dtypes(deployed)


def weights_record(trained, reloaded) -> dict:
    """How the reloaded adapter differs from the trained one: trained tensors missing, tensors not equal
    (compared exactly, in the trained dtype), and LoRA scaling factors not equal."""
    trained_lora = _lora_tensors(trained)
    reloaded_lora = _lora_tensors(reloaded)
    differing = {}
    for name, tensor in trained_lora.items():
        if name in reloaded_lora:
            other = reloaded_lora[name].to(device=tensor.device, dtype=tensor.dtype)
            if not bool((other == tensor).all()):
                differing[name] = float((other.float() - tensor.float()).abs().max())
    trained_scaling, reloaded_scaling = lora_scaling(trained), lora_scaling(reloaded)
    return {
        "tensors": len(trained_lora),
        "missing": sorted(set(trained_lora) - set(reloaded_lora)),
        "differing_max_abs": differing,
        "scaling_differs": {name: [value, reloaded_scaling.get(name)] for name, value in trained_scaling.items()
                            if reloaded_scaling.get(name) != value},
    }


def lora_scaling(model) -> dict[str, float]:
    """{module: the factor peft multiplies its LoRA update by}: alpha / r as the recipe asks, unless a
    release changed how it reads lora_alpha or computes the factor (rsLoRA's alpha / sqrt(r)); the
    parameter count cannot see that, the model's training does."""
    return {name if adapter == "default" else f"{name}[{adapter}]": float(module.scaling[adapter])
            for name, module in model.named_modules()
            if isinstance(getattr(module, "scaling", None), dict) for adapter in module.scaling}


def _lora_tensors(model) -> dict:
    return {name: parameter.detach() for name, parameter in model.named_parameters() if _is_lora(name)}


def _is_lora(name: str) -> bool:
    return "lora_" in name
