"""The version matrix: named library-version sets (versions.toml), one nox session per set, and
the table of what each set did (status, per-suite outcomes, key metrics).

    versions.toml --(noxfile.py: install the set, harness.versions.runner.run_suites)--> the session's
        result JSON (the plugin's own verdicts, harness.checks.result) --(build_result)--> results/<set>.json
    results/*.json --(collect)--> Markdown table, and rows for the HTML report

A set's result JSON (one per set, written by noxfile.py and the history through `build_result`):

    {"schema": 1, "version_set": "seed-2024", "status": "passed" | "failed" | "cannot-run",
     "reason": "...", "profile": "tiny", "requested": ["trl==0.12.1", ...],
     "packages": {"trl": "0.12.1", ...},            # tracked packages as installed (None: absent)
     "suites": {"test_bleu.py": "passed", ...},     # passed | failed | skipped, per suite file
     "suite_counts": {"test_bleu.py": {"passed": 3, "failed": 0, "error": 0, "skipped": 1}},
     "failures": [{"nodeid": "...", "message": "..."}], "metrics": {...},
     "checks": {"suites/test_labels.py::test_x": {"verdict": "BROKEN", "headline": "...", ...}}, ...}

Status: `passed` = pytest exited 0 and at least one check passed; `failed` = a check failed or
errored, or pytest could not run the suites (a harness problem is a failure, never hidden);
`cannot-run` = the set could not be installed, or this device cannot do what the recipe needs
with it (the device probe failed: 4-bit loading or the paged 8-bit optimizer), or every check
was skipped; `reason` says which.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable

from harness import env
from harness.checks.result import NOT_RUN, Check, SessionResult

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

RESULT_SCHEMA = 1
# A set's `checks`: every check, or the structural ones (pytest -m yoda_structural: the prepared stage).
SET_CHECKS = ("all", "structural")
STRUCTURAL_SELECTION = ("-m", "yoda_structural")
STATUSES = ("passed", "failed", "cannot-run")
VERSIONS_FILE = "versions.toml"

# Columns of the Markdown table (the HTML report gets every metric).
TABLE_PACKAGES = ("transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate")
KEY_METRICS = (
    "global_step", "trainable_parameters", "footprint_adapted_mb", "loss_first", "loss_last", "train_loss",
    "bleu", "base_bleu", "non_empty_stop_rate",
)


# ------------------------------------------------------------------ versions.toml
class VersionSetError(ValueError):
    """A versions.toml (or one set in it) that cannot be used; the message names the file and set."""


@dataclass(frozen=True)
class VersionSet:
    name: str
    pins: tuple[str, ...]
    description: str = ""
    # The profile the set's checks run on (versions.toml `profile`; None: the session's default,
    # $YODA_HARNESS_PROFILE or tiny), e.g. smollm2 for a set about how the real model's files are read.
    profile: str | None = None
    # Which checks the matrix runs for the set: "all", or "structural" (the prepared stage only:
    # what a profile whose training needs a GPU can check on a CPU).
    checks: str = "all"

    def pinned(self) -> dict[str, str | None]:
        """Canonical package name -> exact version ('==' pins), or None where unpinned/ranged."""
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        pinned: dict[str, str | None] = {}
        for pin in self.pins:
            requirement = Requirement(pin)
            exact = [s.version for s in requirement.specifier if s.operator in ("==", "===") and "*" not in s.version]
            pinned[canonicalize_name(requirement.name)] = exact[0] if exact else None
        return pinned

    def names(self) -> set[str]:
        return set(self.pinned())


def load_version_sets(path: Path | str = VERSIONS_FILE) -> dict[str, VersionSet]:
    """Every set in `path`, validated; a malformed file or set is a `VersionSetError` naming both."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VersionSetError(f"{path}: no such file (the version sets live in {VERSIONS_FILE} at the repo root)") from None
    except tomllib.TOMLDecodeError as error:
        raise VersionSetError(f"{path}: not valid TOML: {error}") from None
    sets = raw.get("sets")
    if not isinstance(sets, dict) or not sets:
        raise VersionSetError(f"{path}: expected one or more [sets.NAME] tables with a `pins` list")
    unknown_top = set(raw) - {"sets"}
    if unknown_top:
        raise VersionSetError(f"{path}: unknown top-level key(s) {sorted(unknown_top)}; sets go in [sets.NAME]")
    return {name: parse_version_set(name, body, path) for name, body in sets.items()}


def parse_version_set(name: str, body: Any, path: Path | str = VERSIONS_FILE) -> VersionSet:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    def fail(problem: str):
        raise VersionSetError(f"{path}: set {name!r}: {problem}")

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        fail("a set name may hold only letters, digits, '.', '_' and '-' (it names a nox session and files)")
    if not isinstance(body, dict):
        fail(f"expected a table with a `pins` list, got {type(body).__name__}")
    unknown = set(body) - {"pins", "description", "profile", "checks"}
    if unknown:
        fail(f"unknown key(s) {sorted(unknown)}; a set has `pins` and optional `description`, `profile`, `checks`")
    profile = body.get("profile")
    if profile is not None and (not isinstance(profile, str) or not profile):
        fail(f"`profile` must name a profile (a built-in name or a .toml file), got {profile!r}")
    checks = body.get("checks", "all")
    if checks not in SET_CHECKS:
        fail(f"`checks` {checks!r}: expected one of {', '.join(SET_CHECKS)}")
    pins = body.get("pins")
    if not isinstance(pins, list) or not pins:
        fail("`pins` must be a non-empty list of pip requirement strings")
    description = body.get("description", "")
    if not isinstance(description, str):
        fail("`description` must be a string")
    seen: dict[str, str] = {}
    for index, pin in enumerate(pins):
        if not isinstance(pin, str):
            fail(f"pins[{index}]: expected a string like 'trl==0.12.1', got {pin!r}")
        try:
            requirement = Requirement(pin)
        except InvalidRequirement as error:
            fail(f"pins[{index}] {pin!r} is not a pip requirement: {error}")
        if requirement.url:
            fail(f"pins[{index}] {pin!r}: URL requirements are not supported; pin a version")
        key = canonicalize_name(requirement.name)
        if key in seen:
            fail(f"{requirement.name!r} is pinned twice ({seen[key]!r} and {pin!r})")
        seen[key] = pin
    return VersionSet(name=name, pins=tuple(pins), description=description, profile=profile, checks=checks)


# ------------------------------------------------------------------ what a session installs
def project_dependencies(pyproject: Path | str = "pyproject.toml") -> list[str]:
    """`[project].dependencies` of the harness (ranges)."""
    raw = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))
    return list(raw["project"]["dependencies"])


def install_requirements(version_set: VersionSet | Iterable[str], torch_spec: str, project_deps: Iterable[str]) -> list[str]:
    """One pip install's requirements: torch, the set's pins, the project's other deps.

    A project dependency whose package the set pins is left out (the pin wins), and so is torch,
    which comes from `torch_spec` (a local wheel path or `torch`) unless the set pins it.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = list(version_set.pins if isinstance(version_set, VersionSet) else version_set)
    pinned = {canonicalize_name(Requirement(pin).name) for pin in pins}
    others = [dep for dep in project_deps
              if canonicalize_name(Requirement(dep).name) not in pinned | {"torch"}]
    torch = [] if "torch" in pinned else [torch_spec]
    return torch + pins + others


# ------------------------------------------------------------------ the device probe
# Run inside a set's environment before the suites: can these libraries do, on this device, the
# two things the recipe needs from bitsandbytes? (1) load a one-layer Phi-3 in 4-bit NF4 with
# double quantization and run it forward and backward; (2) step the recipe's optimizer,
# `paged_adamw_8bit` (bitsandbytes' PagedAdamW8bit), over fp32 parameters on both of its update
# paths (tensors under 4096 elements take the 32-bit path, larger ones the 8-bit one). Older
# bitsandbytes need CUDA for one or both: the set is then `cannot-run` here, with the stage and
# the library's own error as the reason.
PROBE_SCRIPT = r'''
import json, sys, tempfile, traceback
result = {"ok": False}
stage = "import torch/transformers/bitsandbytes"
try:
    import torch
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Phi3Config
    cuda = torch.cuda.is_available()
    result["device"] = "cuda" if cuda else "cpu"
    device_map = {"": torch.cuda.current_device()} if cuda else "cpu"
    config = Phi3Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                        pad_token_id=0, bos_token_id=1, eos_token_id=2)
    stage = "4-bit NF4 load (from_pretrained with BitsAndBytesConfig(load_in_4bit=True))"
    with tempfile.TemporaryDirectory() as directory:
        AutoModelForCausalLM.from_config(config).save_pretrained(directory)
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)
        model = AutoModelForCausalLM.from_pretrained(directory, quantization_config=quantization, device_map=device_map)
    kinds = sorted({type(m).__name__ for m in model.modules() if "4bit" in type(m).__name__})
    if not kinds:
        raise RuntimeError("from_pretrained(load_in_4bit=True) returned no 4-bit linear layers")
    result["layers"] = kinds
    stage = "4-bit forward and backward"
    ids = torch.tensor([[3, 4, 5, 6]], device=model.device)
    model.get_input_embeddings().weight.requires_grad_(True)
    model(input_ids=ids, labels=ids).loss.backward()
    stage = "optimizer paged_adamw_8bit (bitsandbytes PagedAdamW8bit) step"
    params = [torch.nn.Parameter(torch.randn(8, 64, device=model.device)),      # 32-bit update path
              torch.nn.Parameter(torch.randn(128, 64, device=model.device))]    # 8-bit update path
    optimizer = bnb.optim.PagedAdamW8bit(params, lr=1e-3)
    sum((p ** 2).sum() for p in params).backward()
    optimizer.step()
    result["ok"] = True
except BaseException as error:
    result["stage"] = stage
    result["error"] = f"{stage}: {type(error).__name__}: {error}".strip()
    result["traceback"] = traceback.format_exc()[-4000:]
with open(sys.argv[1], "w") as handle:
    json.dump(result, handle)
'''

# Prints every installed distribution as JSON (run inside a set's environment).
VERSIONS_SCRIPT = (
    "import json, importlib.metadata as m; "
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}))"
)


# ------------------------------------------------------------------ the session's result -> the set's outcomes
def session_outcomes(session: SessionResult) -> dict[str, Any]:
    """Per-suite outcome and counts, failures and skips, and each check's verdict, as the session's
    plugin wrote them (harness.checks.result): a crash of the recipe is its one line, on the check that
    met it (BROKEN, whatever its kind); the checks it kept from running are `not run`."""
    return {
        "suites": session.suite_outcomes(),
        "suite_counts": session.suite_counts(),
        "failures": [{"nodeid": c.nodeid, "suite": c.suite, "kind": "failure" if c.outcome == "failed" else "error",
                      "message": c.message} for c in session.failures()],
        "skips": [{"nodeid": c.nodeid, "suite": c.suite, "message": c.message} for c in session.skips()],
        "checks": {c.nodeid: _check_record(c) for c in session.checks},
        "crash": session.crash.line if session.crash else None,
        "not_run": session.not_run,
    }


def _check_record(check: Check) -> dict:
    """A check as the set's result keeps it; a test that is no check of the recipe reads as its outcome."""
    record = asdict(check)
    record["verdict"] = check.verdict or check.outcome
    return record


def check_of(nodeid: str, record: dict) -> Check:
    """A check of a set's result JSON (keys beyond the model's, as older results hold, are left out)."""
    known = {f.name for f in fields(Check)}
    values = {key: value for key, value in record.items() if key in known}
    return Check(**{"nodeid": nodeid, "outcome": record.get("outcome", ""), **values,
                    "settings": tuple(record.get("settings") or ())})



# ------------------------------------------------------------------ the run's metrics
def latest_run(cache_dir: Path | str) -> Path | None:
    """The newest complete run directory under `<cache_dir>/runs` (sessions never share one)."""
    runs = Path(cache_dir) / "runs"
    complete = []
    for manifest in runs.glob("*/run.json"):
        try:
            if json.loads(manifest.read_text(encoding="utf-8")).get("status") == "complete":
                complete.append(manifest.parent)
        except (OSError, ValueError):
            continue
    return max(complete, key=lambda d: (d / "run.json").stat().st_mtime) if complete else None


def metrics_of_run(run_dir: Path | str) -> dict[str, Any]:
    """`harness.checks.baselines.run_metrics` of a finished run directory (its run.json and template.json)."""
    from harness.checks import baselines
    from harness.run.stages import read_record

    run_dir = Path(run_dir)
    template_path = run_dir / "template.json"
    template = json.loads(template_path.read_text(encoding="utf-8")) if template_path.is_file() else None
    return baselines.run_metrics(read_record(run_dir), template)


# ------------------------------------------------------------------ one set's result
def tracked_versions(installed: dict[str, str]) -> dict[str, str | None]:
    """The tracked packages (harness.env.TRACKED_PACKAGES) from a name -> version listing."""
    from packaging.utils import canonicalize_name

    from harness.env import TRACKED_PACKAGES

    by_name = {canonicalize_name(name): version for name, version in installed.items()}
    return {name: by_name.get(canonicalize_name(name)) for name in TRACKED_PACKAGES}


def classify(*, install_error: str | None, probe: dict | None, exit_code: int | None,
             outcomes: dict | None, session_error: str | None = None) -> tuple[str, str]:
    """(status, reason) of one set from what its session saw."""
    if session_error:
        return "failed", f"the matrix session itself failed: {session_error}"
    if install_error:
        return "cannot-run", f"install failed: {install_error}"
    probe_failed = probe is not None and not probe.get("ok")
    probe_reason = (f"device probe failed on {probe.get('device', 'this device')}: {probe.get('error')}"
                    if probe_failed else None)
    outcomes = outcomes or {"suites": {}, "suite_counts": {}, "failures": [], "skips": []}
    totals = Counter()
    for tally in outcomes["suite_counts"].values():
        totals.update(tally)
    summary = ", ".join(f"{totals[k]} {k}" for k in ("passed", "failed", "error", "skipped") if totals[k])
    failures = outcomes["failures"]
    detail = "; ".join(f"{f['nodeid']}: {f['message'].splitlines()[0] if f['message'] else f['kind']}"
                       for f in failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
    if exit_code == 0 and totals["passed"] and not failures:
        reason = f"pytest: {summary}"
        if probe_failed:
            reason += f" (although the {probe_reason})"
        return "passed", reason
    if probe_failed:
        return "cannot-run", probe_reason + (f" (pytest exit {exit_code}: {summary or 'no results'})"
                                               if exit_code is not None else "")
    if outcomes.get("crash") and exit_code != 0:
        # The recipe itself crashed: one line (phase, root cause, libraries), not the checks it stopped.
        return "failed", outcomes["crash"]
    if exit_code == 0 and not totals["passed"]:
        common = Counter(s["message"].splitlines()[0] for s in outcomes["skips"] if s["message"]).most_common(1)
        return "cannot-run", "every check was skipped" + (f": {common[0][0]}" if common else "")
    if exit_code is None:
        return "failed", "pytest did not run"
    meaning = {1: "checks failed", 2: "interrupted or collection errors", 3: "internal error",
               4: "usage error", 5: "no tests collected"}.get(exit_code, "unexpected exit")
    return "failed", f"pytest exit {exit_code} ({meaning}; {summary or 'no results'})" + (f": {detail}" if detail else "")


def build_result(*, version_set: VersionSet, profile: str, install_error: str | None = None,
                 installed: dict[str, str] | None = None, probe: dict | None = None,
                 session: SessionResult | None = None, cache_dir: Path | str | None = None,
                 duration_s: float | None = None, session_error: str | None = None, extra: dict | None = None,
                 run_dir: Path | str | None = None) -> dict[str, Any]:
    """The result JSON of one set (see the module docstring) from the suites' session result (None:
    pytest did not run); `run_dir` names the recipe run the checks read (else the session's run, else
    the newest complete run in `cache_dir`)."""
    outcomes = session_outcomes(session) if session is not None else None
    exit_code = session.exit_status if session is not None else None
    notes = []
    status, reason = classify(install_error=install_error, probe=probe, exit_code=exit_code, outcomes=outcomes,
                              session_error=session_error)
    metrics, recorded = {}, {}
    if run_dir is None and session is not None and session.run is not None:
        run_dir = session.run.directory
    if run_dir is None and cache_dir is not None:
        run_dir = latest_run(cache_dir)
    if run_dir is not None:
        try:
            metrics = metrics_of_run(run_dir)
            recorded = _run_records(run_dir)
        except (KeyError, ValueError, TypeError, OSError) as error:
            notes.append(f"metrics unreadable from {run_dir}/run.json: {type(error).__name__}: {error}")
    result = {
        "schema": RESULT_SCHEMA,
        "version_set": version_set.name,
        "description": version_set.description,
        "status": status,
        "reason": reason,
        "profile": profile,
        "requested": list(version_set.pins),
        "packages": tracked_versions(installed) if installed else {},
        "installed": dict(sorted(installed.items())) if installed else {},
        "probe": {k: v for k, v in (probe or {}).items() if k != "traceback"} or None,
        "pytest_exit": exit_code,
        "suites": (outcomes or {}).get("suites", {}),
        "suite_counts": (outcomes or {}).get("suite_counts", {}),
        "failures": (outcomes or {}).get("failures", []),
        "checks": (outcomes or {}).get("checks", {}),
        "crash": (outcomes or {}).get("crash"),
        "metrics": metrics,
        "compat": recorded.get("compat", []),
        "library_warnings": recorded.get("library_warnings", []),
        "variant_config": recorded.get("variant_config"),
        "device": recorded.get("device"),
        "run_dir": str(run_dir) if run_dir else None,
        "duration_s": round(duration_s, 1) if duration_s is not None else None,
        "notes": notes,
    }
    result.update(extra or {})
    return result


def _run_records(run_dir: Path | str) -> dict:
    """What a run recorded besides its metrics: adaptations, library warnings, the variant switches."""
    from harness.recipe.record import to_json
    from harness.run.stages import read_record

    record = read_record(Path(run_dir))
    config = record.recipe_config
    switches = {"data.format": config.data.format, "tokenizer.pad_token": config.tokenizer.pad_token,
                "training.packing_strategy": config.training.packing_strategy, "training.bf16": config.training.bf16}
    return {"compat": to_json(record.compat), "library_warnings": to_json(record.library_warnings), "variant_config": switches,
            "device": env.describe_device(record.environment.device)}


def write_result(path: Path | str, result: dict) -> Path:
    from harness import files

    path = Path(path)
    files.write_json(path, result)
    return path


# ------------------------------------------------------------------ collect
class ResultError(ValueError):
    """A result JSON that cannot be read; the message names the file and the field."""


def load_results(results_dir: Path | str) -> list[dict]:
    """Every `*.json` result under `results_dir` (recursively: CI artifacts unpack into folders)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultError(f"{results_dir}: no such directory of matrix results")
    results = []
    for path in sorted(results_dir.rglob("*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ResultError(f"{path}: not valid JSON: {error}") from None
        if not isinstance(raw, dict) or raw.get("schema") != RESULT_SCHEMA or "version_set" not in raw:
            continue  # not a matrix result (e.g. some other JSON artifact next to it)
        for key, kind in (("version_set", str), ("status", str), ("reason", str)):
            if not isinstance(raw.get(key), kind):
                raise ResultError(f"{path}: {key}: expected {kind.__name__}, got {raw.get(key)!r}")
        if raw["status"] not in STATUSES:
            raise ResultError(f"{path}: status: {raw['status']!r} is not one of {', '.join(STATUSES)}")
        raw.setdefault("_path", str(path))
        results.append(raw)
    return results


def report_rows(results: Iterable[dict], order: Iterable[str] | None = None) -> list[dict]:
    """Rows for `harness.checks.report.render_matrix_report`, in versions.toml order when given."""
    rows = [{
        "version_set": r["version_set"],
        "status": r["status"],
        "reason": r["reason"],
        "packages": dict(r.get("packages") or {}),
        "suites": dict(r.get("suites") or {}),
        "metrics": dict(r.get("metrics") or {}),
        "device": r.get("device"),
    } for r in results]
    rank = {name: i for i, name in enumerate(order or [])}
    return sorted(rows, key=lambda row: (rank.get(row["version_set"], len(rank)), row["version_set"]))


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


_SUITE_CELL = {"passed": "passed", "failed": "**FAILED**", "skipped": "skipped"}
_STATUS_CELL = {"passed": "passed", "failed": "**FAILED**", "cannot-run": "*cannot-run*"}


def markdown(rows: list[dict], metrics: Iterable[str] = KEY_METRICS, title: str | None = "Version matrix") -> str:
    """Version set x suite outcomes, key metrics, and each set's reason, as Markdown."""
    suites = sorted({suite for row in rows for suite in row["suites"]})
    metrics = [m for m in metrics if any(m in row["metrics"] for row in rows)]
    lines = [f"## {title}", ""] if title else []
    header = ["version set", "status", *TABLE_PACKAGES, *suites]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["version_set"], _STATUS_CELL.get(row["status"], row["status"])]
        cells += [_cell(row["packages"].get(p)) for p in TABLE_PACKAGES]
        cells += [_SUITE_CELL.get(row["suites"].get(s), _cell(row["suites"].get(s))) for s in suites]
        lines.append("| " + " | ".join(cells) + " |")
    if metrics:
        lines += ["", "| version set | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 1)]
        for row in rows:
            lines.append("| " + " | ".join([row["version_set"], *(_cell(row["metrics"].get(m)) for m in metrics)]) + " |")
    lines += _devices_lines(rows)
    lines += ["", "Reasons:", ""]
    for row in rows:
        lines.append(f"- **{row['version_set']}** ({row['status']}): {_cell(row['reason'])}")
    return "\n".join(lines) + "\n"


def _devices_lines(rows: list[dict]) -> list[str]:
    from harness.checks.report.version_matrix import ran_on

    device = ran_on(rows)
    return ["", f"Ran on: {device}"] if device else []


def render_html(rows: list[dict], path: Path | str):
    """The HTML matrix report (written by harness.checks.report, imported only when asked for)."""
    try:
        from harness.checks.report import render_matrix_report
    except ImportError as error:
        raise RuntimeError(f"the HTML matrix report needs harness.checks.report.render_matrix_report: {error}") from error
    return render_matrix_report(rows, Path(path))


def exit_status(rows: list[dict], allow_cannot_run: bool = False) -> int:
    """0 when every set passed (or could not run, if allowed), else 1."""
    bad = {"failed"} | (set() if allow_cannot_run else {"cannot-run"})
    return 1 if any(row["status"] in bad for row in rows) else 0


# ------------------------------------------------------------------ the history table
def _says_check(nodeid: str, check: dict, detail: bool = True) -> str:
    """What a BROKEN or CHANGED check means: the recipe's crash line where it met one, else its headline
    (its yoda_check marker, with what its message names, the misread token say, unless `detail` is off:
    what 'fixed' compares), else its name."""
    return check_of(nodeid, check).says(detail)


def history_rows(results: Iterable[dict], set_order: Iterable[str] = (), variant_order: Iterable[str] = ()) -> list[dict]:
    """One row per (set, variant) result, in versions.toml order, each with its verdicts, what
    changed since the previous set of the same variant, and the new library warnings."""
    set_rank = {name: i for i, name in enumerate(set_order)}
    variant_rank = {name: i for i, name in enumerate(variant_order)}
    ordered = sorted(results, key=lambda r: (variant_rank.get(r.get("variant"), len(variant_rank)), r.get("variant") or "",
                                             set_rank.get(r["version_set"], len(set_rank)), r["version_set"]))
    rows, previous = [], {}
    for result in ordered:
        variant = result.get("variant") or "-"
        checks = result.get("checks") or {}
        bad = {verdict_: sorted({_says_check(n, c) for n, c in checks.items() if c["verdict"] == verdict_})
               for verdict_ in ("BROKEN", "CHANGED")} if result["status"] != "cannot-run" else {"BROKEN": [], "CHANGED": []}
        before = previous.get(variant)
        fixed = []
        if before is not None and result["status"] != "cannot-run":
            was_bad = {_says_check(n, c, detail=False) for n, c in (before.get("checks") or {}).items()
                       if c["verdict"] in ("BROKEN", "CHANGED")}
            bad_now = {_says_check(n, c, detail=False) for n, c in checks.items() if c["verdict"] in ("BROKEN", "CHANGED")}
            # A check a crash kept from running was not fixed: it did not look.
            not_run = {_says_check(n, c, detail=False) for n, c in checks.items() if c["verdict"] == NOT_RUN}
            fixed = sorted(was_bad - bad_now - not_run)
        new = _new_warnings(result.get("library_warnings") or [], before.get("library_warnings") or []) if before else []
        rows.append({
            "version_set": result["version_set"], "variant": variant, "status": result["status"],
            "reason": result["reason"], "packages": dict(result.get("packages") or {}),
            "broken": bad["BROKEN"], "changed": bad["CHANGED"], "fixed": fixed,
            "counts": Counter(c["verdict"] for c in checks.values()),
            "new_warnings": new, "warnings": result.get("library_warnings") or [],
            "compat": result.get("compat") or [], "duration_s": result.get("duration_s"),
            "timing": result.get("timing") or {}, "checks": checks, "device": result.get("device"),
        })
        if result["status"] != "cannot-run":
            previous[variant] = result
    return rows


def _says(row: dict) -> str:
    if row["status"] == "cannot-run":
        return f"cannot run: {row['reason']}"
    parts = []
    if row["broken"]:
        not_run = row["counts"].get(NOT_RUN, 0)
        parts.append("BROKEN: " + "; ".join(row["broken"])
                     + (f"; {not_run} check{'s' if not_run != 1 else ''} not run" if not_run else ""))
    if row["changed"]:
        parts.append("CHANGED: " + "; ".join(row["changed"]))
    if row["fixed"]:
        parts.append("fixed: " + "; ".join(row["fixed"]))
    if not parts:
        parts.append("passed")
    return " — ".join(parts)


def history_markdown(rows: list[dict], title: str | None = "The recipe's history") -> str:
    """Per variant: each set's trl, verdict counts, what the checks say, new warnings, time."""
    lines = [f"## {title}", ""] if title else []
    header = ["version set", "trl", "transformers", "variant", "passed", "BROKEN", "CHANGED", "skipped",
              "what the checks say", "new library warnings", "time"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        # A set that cannot run here has no verdicts: its checks errored before they could look.
        counts = row["counts"] if row["status"] != "cannot-run" else {}
        warnings_cell = "; ".join(f"{w['library']}: {w['message'][:90]}" for w in row["new_warnings"]) or "—"
        cells = [row["version_set"], _cell(row["packages"].get("trl")), _cell(row["packages"].get("transformers")),
                 row["variant"], *(str(counts.get(k, 0)) if counts else "—" for k in ("passed", "BROKEN", "CHANGED", "skipped")),
                 _cell(_says(row)),
                 _cell(warnings_cell), _cell(f"{row['duration_s']:.0f} s" if row["duration_s"] is not None else None)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _devices_lines(rows)
    preceded = warnings_before_breaks(rows)
    if preceded:
        lines += ["", "Warnings that preceded a break (first seen in an earlier set, naming a setting the broken check is about):", ""]
        lines += [f"- {line}" for line in preceded]
    return "\n".join(lines) + "\n"


def _new_warnings(current: list[dict], before: list[dict]) -> list[dict]:
    """The warnings of a session result (its JSON) that the result before it did not record."""
    from harness.recipe.libwarnings import LibraryWarning, new_warnings

    new = new_warnings([LibraryWarning.from_dict(entry) for entry in current],
                       [LibraryWarning.from_dict(entry) for entry in before])
    return [entry.as_dict() for entry in new]


def warnings_before_breaks(rows: list[dict]) -> list[str]:
    """'trl 0.16.0 warned "...max_seq_length..." before trl-0.20.0 broke: ...' per (variant, break)."""
    from harness.recipe import libwarnings

    lines, seen_first = [], {}
    by_variant: dict[str, list[dict]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    for variant, sequence in by_variant.items():
        first_seen: dict[tuple, tuple[str, dict]] = {}
        for row in sequence:
            for nodeid, check in row["checks"].items():
                if check["verdict"] not in ("BROKEN", "CHANGED"):
                    continue
                settings = set(check.get("settings") or ())
                for signature, (where, entry) in first_seen.items():
                    if settings & set(entry.get("settings") or []) and where != row["version_set"]:
                        line = (f"{variant}: {entry['library']} ({where}) warned \"{entry['message'][:160]}\" "
                                f"before {row['version_set']} broke: {_says_check(nodeid, check, detail=False)}")
                        if line not in seen_first:
                            seen_first[line] = True
                            lines.append(line)
            for entry in row["warnings"]:
                first_seen.setdefault(libwarnings.signature(libwarnings.LibraryWarning.from_dict(entry)),
                                      (row["version_set"], entry))
    return lines
