"""The library-version fingerprint of a run: what a baseline entry is keyed by."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# Every library that shapes a run's result: jinja2 renders each chat template, gguf reads the
# SmolLM2 weights, numpy sits under datasets and sacrebleu.
TRACKED_PACKAGES = (
    "torch", "transformers", "peft", "trl", "bitsandbytes", "datasets",
    "accelerate", "sacrebleu", "tokenizers", "huggingface-hub", "safetensors",
    "jinja2", "gguf", "numpy",
)


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each named distribution (None: not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ------------------------------------------------------------------ the device
# What selects a run's numerics on a CPU, besides the libraries: torch's kernel dispatch (its CPU
# capability), MKL's and oneDNN's code paths, bitsandbytes' 4-bit eval path (on CPUs with
# AVX512-BF16 it repacks the weights and computes in bf16, bnb >= 0.49) and the thread count (it
# splits reductions). A profile may pin them (`CpuKernels`); what a run ran with is recorded.
_CAPABILITY_VARIABLE = "ATEN_CPU_CAPABILITY"
_X86 = ("x86_64", "AMD64", "i686", "i386")


@dataclass(frozen=True)
class CpuKernels:
    """The CPU kernel paths a profile pins, so that its numbers are the same on every x86-64 CPU.

    Unset fields are left to the machine. The environment variables take effect only if set
    before torch picks its kernels (importing bitsandbytes already does): `pin` sets them, then
    reads back what torch uses, and refuses a session where that is not the pin.
    """

    torch_capability: str | None = None  # ATEN_CPU_CAPABILITY: default | avx2 | avx512 ...
    mkl_cbwr: str | None = None  # MKL_CBWR: MKL's conditional numerical reproducibility branch
    onednn_max_isa: str | None = None  # ONEDNN_MAX_CPU_ISA
    bnb_avx512bf16: bool | None = None  # False: bitsandbytes' fp32 4-bit path even on AVX512-BF16 CPUs
    threads: int | None = None  # torch.set_num_threads

    FIELDS = ("torch_capability", "mkl_cbwr", "onednn_max_isa", "bnb_avx512bf16", "threads")

    @classmethod
    def from_table(cls, table: dict, where: str) -> "CpuKernels":
        unknown = sorted(set(table) - set(cls.FIELDS))
        if unknown:
            raise ValueError(f"{where}: [cpu] has unknown key(s) {', '.join(unknown)}; known: {', '.join(cls.FIELDS)}")
        for name in ("torch_capability", "mkl_cbwr", "onednn_max_isa"):
            if name in table and not isinstance(table[name], str):
                raise ValueError(f"{where}: cpu.{name}: expected a string, got {table[name]!r}")
        if "bnb_avx512bf16" in table and not isinstance(table["bnb_avx512bf16"], bool):
            raise ValueError(f"{where}: cpu.bnb_avx512bf16: expected true or false, got {table['bnb_avx512bf16']!r}")
        if "threads" in table and (type(table["threads"]) is not int or table["threads"] < 1):
            raise ValueError(f"{where}: cpu.threads: expected a positive integer, got {table['threads']!r}")
        return cls(**table)

    @property
    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in self.FIELDS)

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS if getattr(self, name) is not None}


class PinError(RuntimeError):
    """A profile's CPU pin that this process cannot honour (torch chose its kernels already)."""


# The pins this process runs under (set once by `pin`, read by the recipe and the device facts).
_pinned: CpuKernels = CpuKernels()


def pinnable() -> bool:
    """Pins are x86-64 kernel names: elsewhere (aarch64) a profile's pins do not apply."""
    return platform.machine() in _X86


def pin(kernels: CpuKernels) -> CpuKernels:
    """Apply `kernels` to this process: the environment before torch chooses its kernels, the
    thread count now. Returns what is in force; raises PinError when torch already runs other
    kernels than the pin (something imported bitsandbytes first: set the variable yourself)."""
    global _pinned
    if not kernels.any or not pinnable():
        _pinned = CpuKernels()
        return _pinned
    variables = {_CAPABILITY_VARIABLE: kernels.torch_capability, "MKL_CBWR": kernels.mkl_cbwr,
                 "ONEDNN_MAX_CPU_ISA": kernels.onednn_max_isa}
    for name, value in variables.items():
        if value is not None:
            os.environ[name] = value
    import torch

    if kernels.torch_capability is not None:
        in_force = torch.backends.cpu.get_cpu_capability()
        if in_force.lower() != kernels.torch_capability.lower():
            raise PinError(
                f"the profile pins torch's CPU kernels to {kernels.torch_capability!r} ([cpu] "
                f"torch_capability), but this process already runs {in_force!r} kernels: something chose "
                f"them before the harness could (importing bitsandbytes does). Run with "
                f"{_CAPABILITY_VARIABLE}={kernels.torch_capability} set, or on a CPU that has those kernels")
    if kernels.threads is not None:
        torch.set_num_threads(kernels.threads)
    _pinned = kernels
    return _pinned


def pinned() -> CpuKernels:
    return _pinned


def apply_bnb_pin(model) -> int:
    """Keep bitsandbytes' 4-bit layers of `model` off their AVX512-BF16 eval path when the pin
    says so (each layer decides by its `support_avx512bf16_for_cpu`, bnb >= 0.49). Returns how
    many layers the pin changed."""
    if _pinned.bnb_avx512bf16 is None:
        return 0
    changed = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", None) not in (None, _pinned.bnb_avx512bf16):
            module.support_avx512bf16_for_cpu = _pinned.bnb_avx512bf16
            changed += 1
    return changed


def gpu_available() -> bool:
    """The harness's one GPU question: every layer asks it here (tests answer it with monkeypatch)."""
    import torch

    return torch.cuda.is_available()


def cpu_model_name() -> str:
    """'AMD EPYC 9B14', from /proc/cpuinfo on Linux (platform.processor() is empty there)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bnb_avx512bf16_path() -> bool | None:
    """Whether bitsandbytes' 4-bit layers compute in bf16 in eval mode on this CPU (None: bnb
    absent or without that path): the CPU has AVX512-BF16, bnb has the path, and no pin turns it off."""
    from packaging.version import Version

    version = package_versions(("bitsandbytes",))["bitsandbytes"]
    if version is None or Version(version) < Version("0.49.0"):
        return None  # absent, or a release before the path
    from bitsandbytes.functional import has_avx512bf16

    available = bool(has_avx512bf16())
    return available if _pinned.bnb_avx512bf16 is None else available and _pinned.bnb_avx512bf16


def _gpu_driver() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def device_facts() -> dict:
    """The device and what selects its numerics (recorded in every run and baseline entry)."""
    import torch

    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        return {"kind": "cuda", "name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}",
                "cuda": torch.version.cuda, "driver": _gpu_driver(), "count": torch.cuda.device_count()}
    return {"kind": "cpu", "name": cpu_model_name(), "machine": platform.machine(), "cuda": None, "count": 0,
            "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "bnb_avx512bf16_path": bnb_avx512bf16_path(), "threads": torch.get_num_threads(),
            "pinned": _pinned.as_dict()}


def fingerprint() -> dict:
    return {"python": platform.python_version(), "packages": package_versions(), "device": device_facts()}


@dataclass(frozen=True, kw_only=True)
class Environment:
    """Where a run ran (its record's `environment`): the fingerprint and how many processes trained.

    The functions below and the baseline store read it as JSON (`as_dict`): a baseline entry keeps
    the same facts in a file. `device` stays the JSON `device_facts` makes: its fields depend on
    the device's kind and on when the run was recorded."""

    python: str
    packages: dict[str, str | None]
    device: dict[str, Any]
    processes: int  # torchrun / accelerate launch: each process takes one batch per step

    @classmethod
    def here(cls, processes: int = 1) -> "Environment":
        return cls(**fingerprint(), processes=processes)

    def as_dict(self) -> dict:
        return asdict(self)


def version_set_id(env: dict) -> str:
    """Short stable id of the library versions alone (device kept separately)."""
    canonical = json.dumps(env["packages"], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def device_type(device: dict) -> str:
    """'cpu' or 'cuda': devices of one type may share numbers through a measured cross-device band."""
    return device.get("kind", "cpu")


def _cpu_key(device: dict) -> str:
    """What a CPU entry is keyed by: the CPU model and the facts that select its kernels. A pin makes
    the numbers independent of the dispatch the machine would choose, not of the CPU: under the full
    pin an AMD EPYC and an Intel Xeon still part in the fourth digit of the loss by step 50
    (docs/devices.md), so the model stays in the key and other CPUs compare through cross-device bands."""
    if "torch_capability" not in device:
        return "cpu"  # recorded before runs knew their CPU facts
    bnb = {True: "bnb bf16", False: "bnb fp32", None: "bnb -"}[device.get("bnb_avx512bf16_path")]
    pinned = ", pinned" if device.get("pinned") else ""
    return f"cpu {device.get('name')} ({device['torch_capability'].lower()}, {bnb}, {device.get('threads')} threads{pinned})"


def device_kind(env: dict) -> str:
    """What a baseline entry is keyed by (the device whose numbers a run reproduces exactly): a
    CPU by the facts that select its kernels (`_cpu_key`), a GPU by its model name, and the process
    count past one ('NVIDIA H200, 2 processes'). Over N processes a run takes 1/N of the optimizer
    steps and another batch per step: it is another run, never compared with a 1-process entry."""
    device = env["device"]
    kind = _cpu_key(device) if device["kind"] == "cpu" else device["name"]
    processes = env.get("processes", 1)  # recorded before runs knew their process count: one
    return kind if processes == 1 else f"{kind}, {processes} processes"


def describe_device(device: dict) -> str:
    """One line for the verdict, the report header and doctor."""
    if device.get("kind") == "cuda":
        facts = [f"sm_{device['compute_capability'].replace('.', '')}" if device.get("compute_capability") else None,
                 f"CUDA {device['cuda']}" if device.get("cuda") else None,
                 f"driver {device['driver']}" if device.get("driver") else None]
        return f"{device['name']} ({', '.join(f for f in facts if f)})"
    if "torch_capability" not in device:
        return device.get("name") or "cpu"
    bnb = {True: "bitsandbytes 4-bit eval in bf16 (AVX512-BF16)", False: "bitsandbytes 4-bit in fp32",
           None: "bitsandbytes without a CPU bf16 path"}[device.get("bnb_avx512bf16_path")]
    pins = device.get("pinned") or {}
    pinned = f"; pinned by the profile: {', '.join(f'{k}={v}' for k, v in pins.items())}" if pins else ""
    return (f"{device.get('name')} ({device.get('machine')}), torch CPU kernels {device['torch_capability']}, "
            f"{bnb}, {device.get('threads')} threads{pinned}")


def device_header(device: dict) -> str:
    """The report header's device line: `describe_device` with the GPU count, and what a run recorded
    before the kernel facts were (a CPU's name, a GPU's CUDA)."""
    if device.get("kind") == "cpu" and "torch_capability" in device:
        return f"CPU: {describe_device(device)}"
    if device.get("kind") == "cuda" and device.get("compute_capability"):
        return f"{describe_device(device)} x{device.get('count', 1)}"
    if device.get("kind") == "cpu":
        return f"CPU ({device.get('name') or 'unknown'})"
    return f"{device.get('name') or 'GPU'} x{device.get('count', 1)}, CUDA {device.get('cuda') or '?'}"


def changed_packages(old: dict, new: dict) -> list[str]:
    """'trl 1.15.0 → 1.16.0' for each tracked package whose version differs."""
    changes = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            changes.append(f"{name} {old.get(name) or 'absent'} → {new.get(name) or 'absent'}")
    return changes


def harness_source_digest(root=None) -> str:
    """sha256 of the harness package's own files: a change to what the harness does is a new run."""
    from pathlib import Path

    root = Path(root or Path(__file__).resolve().parent)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and p.suffix not in (".pyc", ".pyo")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def harness_revision() -> dict:
    """Which harness made a run or a baseline: source digest, and the git commit when in a checkout."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent
    revision = {"source": harness_source_digest(), "commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0:
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "."],
                                    capture_output=True, text=True, timeout=10)
            revision.update(commit=commit.stdout.strip(), dirty=bool(status.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        pass  # not a checkout (an installed package): the source digest still says which code ran
    return revision


def describe_revision(revision: dict) -> str:
    if revision.get("commit"):
        return f"{revision['commit'][:10]}{' (dirty)' if revision.get('dirty') else ''}"
    return f"source {revision['source']}"
