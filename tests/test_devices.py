"""Verdicts that mean the same on every machine: the device identity, the CPU pins, entry choice
across devices, and the cross-device bands recording measures (harness.env, harness.checks.baselines)."""

import copy
import subprocess
import sys

import pytest
from test_baselines import manifest

from harness import env
from harness.checks import baselines
from harness.recipe.profiles import PROFILES, ProfileError, load_profile
from harness.recipe.record import load

PINNED_CPU = {"kind": "cpu", "name": "AMD EPYC", "machine": "x86_64", "cuda": None, "count": 0,
              "torch_capability": "AVX2", "bnb_avx512bf16_path": False, "threads": 2,
              "pinned": {"torch_capability": "avx2", "mkl_cbwr": "AVX2", "onednn_max_isa": "AVX2",
                         "bnb_avx512bf16": False, "threads": 2}}
H100 = {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "cuda": "13.0",
        "driver": "580.82", "count": 1}
H200 = dict(H100, name="NVIDIA H200")
PACKAGES = {"trl": "1.16.0", "transformers": "5.23.0"}


def environment(device: dict, **packages) -> dict:
    return {"python": "3.12.3", "packages": dict(PACKAGES, **packages), "device": copy.deepcopy(device)}


def losses(run: dict, first: float, last: float, train: float) -> dict:
    run["training"]["loss_history"] = [{"step": 10, "loss": first}, {"step": 40, "loss": last}]
    run["training"]["train_loss"] = train
    return run


# ------------------------------------------------------------------ the device identity
def test_a_pinned_cpu_is_keyed_by_its_model_and_its_pinned_kernels():
    """Pinned, an AMD EPYC and an Intel Xeon still part in the loss's fourth digit (docs/devices.md)."""
    intel = dict(PINNED_CPU, name="Intel(R) Xeon(R) Platinum 8480+")
    assert env.device_kind({"device": PINNED_CPU}) == "cpu AMD EPYC (avx2, bnb fp32, 2 threads, pinned)"
    assert env.device_kind({"device": intel}) != env.device_kind({"device": PINNED_CPU})


def test_an_unpinned_cpu_is_keyed_by_its_model_and_kernels():
    native = dict(PINNED_CPU, torch_capability="AVX512", bnb_avx512bf16_path=True, pinned={})
    assert env.device_kind({"device": native}) == "cpu AMD EPYC (avx512, bnb bf16, 2 threads)"
    assert env.device_kind({"device": dict(native, threads=1)}) != env.device_kind({"device": native})
    assert "AVX512-BF16" in env.describe_device(native) and "pinned" not in env.describe_device(native)


def test_a_gpu_is_keyed_by_its_name_and_described_with_its_compute_capability_cuda_and_driver():
    assert env.device_kind({"device": H100}) == "NVIDIA H100 80GB HBM3"
    assert env.describe_device(H100) == "NVIDIA H100 80GB HBM3 (sm_90, CUDA 13.0, driver 580.82)"
    assert env.device_kind({"device": H100, "processes": 2}) == "NVIDIA H100 80GB HBM3, 2 processes"


def test_this_machine_reports_what_selects_its_numerics():
    facts = env.device_facts()
    if facts["kind"] == "cuda":
        assert facts["name"] and facts["compute_capability"] and facts["cuda"]
    else:
        assert facts["name"] and facts["torch_capability"] and facts["threads"] >= 1
        assert facts["bnb_avx512bf16_path"] in (True, False)  # bitsandbytes >= 0.49 is pinned


# ------------------------------------------------------------------ the profile's pins
def test_tiny_pins_its_cpu_kernels():
    assert PROFILES["tiny"].cpu.as_dict() == {"torch_capability": "avx2", "mkl_cbwr": "AVX2",
                                              "onednn_max_isa": "AVX2", "bnb_avx512bf16": False, "threads": 2}
    assert not PROFILES["smollm2"].cpu.any


@pytest.mark.parametrize("table, message", [
    ("threads = 0", "cpu.threads: expected a positive integer, got 0"),
    ("bnb_avx512bf16 = 'no'", "cpu.bnb_avx512bf16: expected true or false"),
    ("torch_capabilty = 'avx2'", "[cpu] has unknown key(s) torch_capabilty"),
])
def test_a_wrong_cpu_table_names_the_file_and_the_key(tmp_path, table, message):
    path = tmp_path / "ours.toml"
    path.write_text(f'extends = "tiny"\nname = "ours"\ndescription = "x"\n\n[cpu]\n{table}\n')
    with pytest.raises(ProfileError) as error:
        load_profile(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_profile_that_extends_tiny_may_change_one_pin(tmp_path):
    path = tmp_path / "ours.toml"
    path.write_text('extends = "tiny"\nname = "ours"\ndescription = "x"\n\n[cpu]\nthreads = 1\n')
    assert load_profile(path).cpu.as_dict() == dict(PROFILES["tiny"].cpu.as_dict(), threads=1)


def test_a_pin_torch_has_already_passed_is_refused_with_what_to_do():
    """Importing bitsandbytes makes torch choose its kernels: a pin after that cannot hold."""
    if not env.pinnable():
        pytest.skip("the pins name x86-64 kernels; this machine is not x86-64")
    code = ("import os; os.environ.pop('ATEN_CPU_CAPABILITY', None)\n"
            "import bitsandbytes, torch\n"
            "from harness import env\n"
            "native = torch.backends.cpu.get_cpu_capability()\n"
            "other = 'default' if native != 'DEFAULT' else 'avx2'\n"
            "try:\n    env.pin(env.CpuKernels(torch_capability=other))\nexcept env.PinError as error:\n"
            "    print('REFUSED', error)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "REFUSED" in done.stdout and "ATEN_CPU_CAPABILITY=" in done.stdout, done.stdout + done.stderr


def test_a_pin_set_before_torch_chooses_holds_in_a_fresh_process():
    if not env.pinnable():
        pytest.skip("the pins name x86-64 kernels; this machine is not x86-64")
    code = ("import os; os.environ.pop('ATEN_CPU_CAPABILITY', None)\n"
            "from harness import env\nenv.pin(env.CpuKernels(torch_capability='default', threads=1))\n"
            "import bitsandbytes, torch\nprint(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["DEFAULT", "1"], done.stdout + done.stderr


# ------------------------------------------------------------------ entry choice across devices
def record(path, device, first=8.0, last=3.0, train=5.0, bleu=10.0, seed=0, **packages):
    run = losses(manifest(environment(device, **packages), bleu=bleu, seed=seed), first, last, train)
    return baselines.update(path, "smollm2", load(run), {"rendered": "template"})


def test_the_same_device_is_chosen_first_then_another_device_of_its_type(tmp_path):
    path = tmp_path / "smollm2.json"
    record(path, H200)
    on_h100 = baselines.compare(path, "smollm2", environment(H100))
    assert on_h100.entry["device"] == "NVIDIA H200" and on_h100.other_device == "NVIDIA H200"
    context = on_h100.context()
    assert "recorded on NVIDIA H200 (sm_90, CUDA 13.0, driver 580.82); this is NVIDIA H100 80GB HBM3" in context
    assert "no library changed" in context
    record(path, H100)
    assert baselines.compare(path, "smollm2", environment(H100)).other_device is None
    assert baselines.compare(path, "smollm2", environment(PINNED_CPU)).entry is None  # a CPU never takes a GPU's


def test_with_no_entry_the_context_never_says_no_library_changed(tmp_path):
    path = tmp_path / "smollm2.json"
    record(path, H200)
    none = baselines.compare(path, "smollm2", environment(PINNED_CPU, trl="0.23.1"))
    assert none.entry is None and "no library changed" not in none.context()
    assert "no baseline entry for cpu AMD EPYC (avx2, bnb fp32, 2 threads, pinned) (entries for: NVIDIA H200)" \
        in none.context()


def test_another_devices_entry_names_the_libraries_that_differ(tmp_path):
    path = tmp_path / "smollm2.json"
    record(path, H200, transformers="5.23.0")
    other = baselines.compare(path, "smollm2", environment(H100, transformers="5.17.0"))
    assert other.changed == ["transformers 5.23.0 → 5.17.0"] and "no library changed" not in other.context()


def test_without_a_cross_device_band_numbers_are_not_compared_and_exact_figures_are(tmp_path):
    path = tmp_path / "smollm2.json"
    record(path, H200)
    comparison = baselines.compare(path, "smollm2", environment(H100))
    run = losses(manifest(environment(H100)), 8.0, 3.0, 5.0)
    verdicts = {v.name: v for v in comparison.judge_all(load(run), {"rendered": "template"})}
    assert verdicts["loss_first"].status == "not-compared"
    assert "no cross-device band" in verdicts["loss_first"].reason
    assert verdicts["trainable_parameters"].status == "ok" and verdicts["template_rendered"].status == "ok"
    run["structure"]["trainable_parameters"] += 1
    assert comparison.judge("trainable_parameters", load(run), None).status == "changed"


def test_an_entry_is_keyed_by_its_recorded_facts_under_todays_rule(tmp_path):
    path = tmp_path / "tiny.json"
    record(path, PINNED_CPU)
    data = baselines.load(path, "smollm2")
    data["entries"][0]["device"] = "cpu (avx2, bnb fp32, 2 threads, pinned)"  # as an older rule keyed it
    baselines.files.write_json(path, data)
    assert baselines.load(path, "smollm2")["entries"][0]["device"] == env.device_kind({"device": PINNED_CPU})
    assert baselines.compare(path, "smollm2", environment(PINNED_CPU)).other_device is None


def test_recording_a_second_device_measures_cross_device_bands_beside_each_entry(tmp_path):
    path = tmp_path / "smollm2.json"
    record(path, H200, first=3.75, last=0.30, train=1.08)
    lines = record(path, H100, first=3.77, last=0.31, train=1.09)
    assert any(line.startswith("cross-device bands measured over NVIDIA H100 80GB HBM3, NVIDIA H200") for line in lines)
    stored = baselines.load(path, "smollm2")  # validates the new fields too
    for entry in stored["entries"]:
        cross = entry["metrics"]["loss_first"]["cross_device"]
        assert cross["samples"] == {"NVIDIA H200": [3.75], "NVIDIA H100 80GB HBM3": [3.77]}
        assert cross["band"]["low"] <= 3.75 and cross["band"]["high"] >= 3.77  # every device's sample inside
        assert "cross_device" not in entry["metrics"]["trainable_parameters"]  # exact, equal on both: travels


def test_a_cross_device_band_can_fail(tmp_path):
    """A learning rate halved behind the config's back, judged on an H100 against the H200 entry."""
    path = tmp_path / "smollm2.json"
    record(path, H200, first=3.75, last=0.30, train=1.08)
    record(path, H100, first=3.77, last=0.31, train=1.09)
    baselines_file = baselines.load(path, "smollm2")
    baselines_file["entries"] = [e for e in baselines_file["entries"] if e["device"] == "NVIDIA H200"]
    baselines.files.write_json(path, baselines_file)
    comparison = baselines.compare(path, "smollm2", environment(H100))
    assert comparison.other_device == "NVIDIA H200"
    clean = losses(manifest(environment(H100)), 3.76, 0.305, 1.085)
    assert all(v.status == "ok" for v in comparison.judge_all(load(clean), {"rendered": "template"})
               if v.name in ("loss_first", "loss_last", "train_loss"))
    halved = losses(manifest(environment(H100)), 4.10, 0.52, 1.337)
    changed = {v.name for v in comparison.judge_all(load(halved), {"rendered": "template"}) if v.status == "changed"}
    assert {"loss_first", "loss_last", "train_loss"} <= changed


def test_a_cross_device_band_covers_only_the_devices_it_was_measured_on(tmp_path):
    path = tmp_path / "smollm2.json"
    record(path, H200, first=3.75)
    record(path, H100, first=3.77)
    a100 = dict(H100, name="NVIDIA A100-SXM4-80GB", compute_capability="8.0")
    comparison = baselines.compare(path, "smollm2", environment(a100))
    assert comparison.other_device is not None
    verdict = comparison.judge("loss_first", load(losses(manifest(environment(a100)), 3.76, 3.0, 5.0)), None)
    assert verdict.status == "not-compared" and "measured over NVIDIA H100 80GB HBM3, NVIDIA H200, not " \
        "NVIDIA A100-SXM4-80GB" in verdict.reason


def test_an_exact_figure_that_differs_between_devices_is_marked_and_compared_per_device(tmp_path):
    path = tmp_path / "smollm2.json"
    record(path, H200)
    h100 = manifest(environment(H100))
    h100["adapter"]["dtypes"] = ["F32"]
    lines = baselines.update(path, "smollm2", load(losses(h100, 8.0, 3.0, 5.0)), {"rendered": "template"})
    assert any(line.startswith("adapter_dtype: differs between the devices") for line in lines)
    h200 = next(e for e in baselines.load(path, "smollm2")["entries"] if e["device"] == "NVIDIA H200")
    assert h200["metrics"]["adapter_dtype"]["device_dependent"] is True
    assert not baselines.travels("adapter_dtype", h200["metrics"]["adapter_dtype"])
    assert baselines.travels("adapter_dtype") and not baselines.travels("bleu")


def test_cross_device_bands_never_join_other_process_counts_or_other_inputs(tmp_path):
    path = tmp_path / "smollm2.json"
    record(path, H200)
    two = losses(manifest(environment(H100)), 8.0, 3.0, 5.0)
    two["environment"]["processes"] = 2
    lines = baselines.update(path, "smollm2", load(two), {"rendered": "template"})
    assert not any("cross-device" in line for line in lines)
    other_inputs = losses(manifest(environment(H100)), 8.0, 3.0, 5.0)
    other_inputs["config"]["training"]["learning_rate"] = 0.001
    assert not any("cross-device" in line for line in baselines.update(path, "smollm2", load(other_inputs), None))


def test_a_cross_device_band_that_does_not_hold_the_value_is_refused(tmp_path):
    path = tmp_path / "smollm2.json"
    record(path, H200, first=3.75)
    record(path, H100, first=3.77)
    data = baselines.load(path, "smollm2")
    data["entries"][0]["metrics"]["loss_first"]["cross_device"]["band"]["low"] = 10.0
    baselines.files.write_json(path, data)
    with pytest.raises(baselines.BaselineError, match=r"loss_first\.cross_device\.band"):
        baselines.load(path, "smollm2")


def test_an_entry_of_the_prepared_stage_alone_records_no_step_count(tmp_path):
    """smollm2's structural entry on a CPU: nothing trained, so no optimizer step count; a trained
    entry without one is still refused as malformed."""
    path = tmp_path / "smollm2.json"
    record(path, PINNED_CPU)
    data = baselines.load(path, "smollm2")
    data["entries"][0]["inputs"]["global_step"] = None
    baselines.files.write_json(path, data)
    with pytest.raises(baselines.BaselineError, match=r"inputs\.global_step"):
        baselines.load(path, "smollm2")
    data["entries"][0]["provenance"] = {"stage": "prepared"}
    baselines.files.write_json(path, data)
    assert baselines.load(path, "smollm2")["entries"][0]["inputs"]["global_step"] is None
