"""Proof that the suites can fail: inject each regression, run `pytest suites --yoda-profile tiny`,
and assert that the matching suite fails with a message naming the cause while the unrelated
suites still pass.

A structural regression (template, labels, packing, parameters) shows in what the recipe builds
before its first optimizer step, so its case runs `-m yoda_structural`: the prepared stage only, no
training (seconds). A regression of what the model learned (stopping) needs a model that learned
to stop, or the check would fail with or without the injection: `LEARNED_TRAINING`, one of the
profile's three epochs (measured on tiny, seed 0: every non-empty output ends on EOS from half an
epoch on; at 0.3 epochs every output is still empty). A regression of the save and reload needs a
trained adapter but not a learned one: a few steps and short generations (`SAVE_ONLY`), which the
learned checks are not asked about. Each case is one fresh tiny run.
"""

import os
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from harness import files
from harness.recipe import deployed as deployed_module
from harness.run import artifacts
from tests import sessions

ROOT = Path(__file__).resolve().parents[1]
ALL_SUITES = {"test_memory.py", "test_trainable.py", "test_labels.py", "test_chat_template.py", "test_bleu.py",
              "test_stopping.py", "test_training.py", "test_tokens.py", "test_baseline.py", "test_warnings.py",
              "test_deployed.py"}
STRUCTURAL_SUITES = {"test_memory.py", "test_trainable.py", "test_labels.py", "test_chat_template.py", "test_tokens.py",
                     "test_baseline.py"}

# regression -> (suite that must fail, words its failure must contain, suites that must still pass,
#                how much training it needs: None, SAVED or LEARNED)
LEARNED, SAVED = "learned", "saved"
CASES = {
    "untemplated": ("test_chat_template.py", "chat template was not applied",
                    {"test_memory.py", "test_trainable.py"}, None),
    "eos-masked": ("test_labels.py", "the collator masked EOS",
                   {"test_memory.py", "test_trainable.py", "test_chat_template.py"}, None),
    "packing-bfd": ("test_labels.py", "the packing strategy changed",
                    {"test_memory.py", "test_trainable.py", "test_chat_template.py"}, None),
    "packing-drops-shorter-rows": ("test_labels.py", "the packing strategy or the tokenized text changed",
                                   {"test_memory.py", "test_trainable.py", "test_chat_template.py"}, None),
    "max-length-ignored": ("test_labels.py", "did not reach SFTConfig",
                           {"test_memory.py", "test_trainable.py", "test_chat_template.py"}, None),
    "adapters-frozen": ("test_trainable.py", "froze the LoRA adapters",
                        {"test_memory.py", "test_labels.py", "test_chat_template.py"}, None),
    "generate-ignores-eos": ("test_stopping.py", "did not learn to stop",
                             {"test_memory.py", "test_trainable.py", "test_labels.py", "test_chat_template.py",
                              "test_training.py"}, LEARNED),
    # A comparison with the baseline (CHANGED): still made on a one-epoch run, as the template
    # depends on the model alone (the learned metrics are refused: the config differs).
    "template-drift": ("test_baseline.py", "renders differently",
                       {"test_memory.py", "test_trainable.py"}, None),
    "lora-rank": ("test_trainable.py", "did not reach get_peft_model",
                  {"test_labels.py", "test_chat_template.py"}, None),
    # With the tiny model's turn head the model still learns at half the scaling (docs/tiny.md):
    # only the structural check sees it.
    "lora-scaling-halved": ("test_trainable.py", "the LoRA scaling did not reach the adapters",
                            {"test_labels.py", "test_chat_template.py", "test_memory.py"}, None),
    "adapter-saved-renamed": ("test_training.py", "the saved adapter is not the trained one",
                              {"test_memory.py", "test_trainable.py", "test_labels.py", "test_chat_template.py"},
                              SAVED),
}
STRUCTURAL = ["-m", "yoda_structural"]
LEARNED_TRAINING = ["--yoda-override", "training.num_train_epochs=1"]
# A saved adapter, not a learned one: about six optimizer steps, eight new tokens per generation.
SAVE_ONLY = ["--yoda-override", "training.num_train_epochs=0.05", "--yoda-override", "generation.max_new_tokens=8"]
TRAINING_ARGS = {None: STRUCTURAL, SAVED: SAVE_ONLY, LEARNED: LEARNED_TRAINING}


def run_checks(tmp_path: Path, models_dir: Path, inject: str, extra: list[str],
               paths: tuple[str, ...] = ("suites",)) -> dict[str, tuple[str, str, str | None]]:
    """{"suite file::check": (outcome, message, verdict)} of a fresh tiny run with `inject` applied
    (verdict: the JUnit property harness.checks.verdicts adds to a failed check, BROKEN or CHANGED)."""
    junit = tmp_path / "junit.xml"
    env = dict(os.environ, YODA_HARNESS_INJECT=inject, YODA_HARNESS_MODELS_DIR=str(models_dir),
               YODA_HARNESS_QUIET="1")
    command = [sys.executable, "-m", "pytest", *paths, "--yoda-profile", "tiny", "--yoda-fresh", "--yoda-cache-dir",
               str(tmp_path / "cache"), "-p", "tests.regressions", "-p", "no:cacheprovider", "-q",
               f"--junitxml={junit}", *extra]
    done = sessions.run(command, cwd=ROOT, env=env)
    assert junit.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    outcomes: dict[str, tuple[str, str, str | None]] = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        suite = case.get("classname").split(".")[-1] + ".py"
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        outcome = "failed" if problem is not None else "skipped" if skipped is not None else "passed"
        message = (problem.get("message", "") + (problem.text or "")) if problem is not None else ""
        verdict = next((prop.get("value") for prop in case.iter("property") if prop.get("name") == "verdict"), None)
        outcomes[f"{suite}::{case.get('name')}"] = (outcome, message, verdict)
    return outcomes


def run_suites(tmp_path: Path, models_dir: Path, inject: str, extra: list[str]) -> dict[str, list[tuple[str, str]]]:
    """{suite file: [(outcome, message), ...]} of a fresh tiny run with `inject` applied."""
    outcomes: dict[str, list[tuple[str, str]]] = {}
    for check, (outcome, message, _) in run_checks(tmp_path, models_dir, inject, extra).items():
        outcomes.setdefault(check.split("::")[0], []).append((outcome, message))
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("inject", sorted(CASES))
def test_injected_regression_fails_its_suite(inject, tmp_path, shared_models_dir):
    suite, cause, unaffected, training = CASES[inject]
    outcomes = run_suites(tmp_path, shared_models_dir, inject, TRAINING_ARGS[training])
    assert set(outcomes) == (ALL_SUITES if training else STRUCTURAL_SUITES), f"suites that ran: {sorted(outcomes)}"
    failures = [message for outcome, message in outcomes[suite] if outcome == "failed"]
    assert failures, f"{inject}: {suite} did not fail"
    assert any(cause in message for message in failures), (
        f"{inject}: {suite} failed without naming the cause {cause!r}: {failures[0][:500]}"
    )
    for other in unaffected:
        broken = [message[:300] for outcome, message in outcomes[other] if outcome == "failed"]
        assert not broken, f"{inject}: unrelated suite {other} failed too: {broken}"


@pytest.mark.slow
def test_an_injected_packing_crash_is_one_broken_line_in_the_terminal_junit_and_matrix(tmp_path, shared_models_dir):
    """The recipe crashes in its trainer phase (trl's packing raises KeyError: 'text' under its
    ValueError): one BROKEN line naming the phase and the root cause, in the terminal's verdict,
    in the JUnit XML (the session's property, and the check that met it: BROKEN, a comparison too)
    and in `harness matrix`'s reason; every other check is 'not run'."""
    from harness.checks.result import NOT_RUN, SessionResult
    from harness.versions import matrix

    junit, session_path = tmp_path / "junit.xml", tmp_path / "session.json"
    env = dict(os.environ, YODA_HARNESS_INJECT="packing-crashes", YODA_HARNESS_MODELS_DIR=str(shared_models_dir))
    command = [sys.executable, "-m", "pytest", "suites", "--yoda-profile", "tiny", "--yoda-fresh", "--yoda-cache-dir",
               str(tmp_path / "cache"), "-p", "tests.regressions", "-p", "no:cacheprovider", "-q",
               f"--junitxml={junit}", f"--yoda-result-json={session_path}", *STRUCTURAL]
    done = sessions.run(command, cwd=ROOT, env=env)
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-3000:]
    line = ("the recipe failed in phase trainer: KeyError: 'text' (raised as ValueError: Error occurred while packing "
            "the dataset (injected)) with trl ")
    verdict = done.stdout.split("yoda-harness verdict", 1)[1].splitlines()[1]
    assert verdict.startswith("1 thing broke: " + line) and verdict.endswith("checks not run: the recipe failed in phase trainer")
    session = SessionResult.read(session_path)
    assert session.crash.line.startswith(line) and "\n" not in session.crash.line
    assert (session.crash.phase, session.crash.root_cause) == ("trainer", "KeyError: 'text'")
    outcomes = matrix.session_outcomes(session)
    verdicts = [check["verdict"] for check in outcomes["checks"].values()]
    assert verdicts.count("BROKEN") == 1 and set(verdicts) == {"BROKEN", NOT_RUN}, verdicts
    met = ElementTree.parse(junit).getroot().find(".//testcase/properties/property[@name='recipe_crash']/..")
    assert {p.get("name"): p.get("value") for p in met}["verdict"] == "BROKEN"
    result = matrix.build_result(version_set=matrix.VersionSet("injected", ("trl",)), profile="tiny", probe={"ok": True},
                                 session=session, extra={"variant": "2025-10"})
    assert (result["status"], result["reason"]) == ("failed", outcomes["crash"])
    row = matrix.history_markdown(matrix.history_rows([result])).splitlines()[-1]
    assert f"BROKEN: {outcomes['crash']}; {len(verdicts) - 1} checks not run |" in row and row.count("KeyError") == 1


# ------------------------------------------------------------------ what users deploy: the saved folder
# A mismatch written at save time (tests/regressions.py wraps `SFTTrainer.save_model`) -> (the check
# of suites/test_deployed.py that must fail, how its one-line message must begin). Saving happens in
# the trained stage; these checks need a saved adapter, not a learned one: a few steps of training
# and short generations.
DEPLOYED = "test_deployed.py::"
WRITTEN_BY = " (written by transformers "
SAVED_CASES = {
    "saved-eos": (DEPLOYED + "test_saved_tokenizer_has_the_trained_special_token[eos]",
                  "adapter/tokenizer_config.json eos_token: trained '<|endoftext|>' (id 32000), saved '<|end|>' (id 32007)"),
    "saved-pad": (DEPLOYED + "test_saved_tokenizer_has_the_trained_special_token[pad]",
                  "adapter/tokenizer_config.json pad_token: trained '<unk>' (id 0), saved '<|endoftext|>' (id 32000)"),
    "saved-template": (DEPLOYED + "test_saved_chat_template_renders_the_trained_prompt",
                       "adapter/chat_template.jinja rendered prompt (one user turn, add_generation_prompt=True) from "
                       "character 1: trained '<|user|>\\nThe Force is str'..., saved '<s><|user|>\\nThe Force is '..."),
    "saved-generation-config-eos": (DEPLOYED + "test_deployed_generation_config_stops_on_the_trained_eos",
                                    "adapter/generation_config.json eos_token_id: trained '<|endoftext|>' (id 32000), saved 32007"),
}
# Checks a save-time mismatch must leave passing: what the trainer built, the tokens as read, the
# adapter weights after the reload, and every other check of the saved folder.
SAVED_PATHS = ("suites/test_deployed.py", "suites/test_tokens.py", "suites/test_chat_template.py", "suites/test_trainable.py",
               "suites/test_training.py::test_reloaded_adapter_holds_the_trained_weights")


def _run_directory(cache: Path) -> Path:
    (run,) = [p for p in (cache / "runs").iterdir() if p.is_dir() and not p.name.endswith("-prepared")
              and not p.name.startswith(".")]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("inject", sorted(SAVED_CASES))
def test_a_mismatch_written_at_save_time_is_broken_in_the_trained_stage(inject, tmp_path, shared_models_dir):
    check, message = SAVED_CASES[inject]
    outcomes = run_checks(tmp_path, shared_models_dir, inject, SAVE_ONLY, SAVED_PATHS)
    assert outcomes[check][0] == "failed", f"{inject}: {check} did not fail: {outcomes[check]}"
    assert outcomes[check][2] == "BROKEN", f"{inject}: {check} failed as {outcomes[check][2]}, not BROKEN"
    first_line = outcomes[check][1].removeprefix("AssertionError: ").splitlines()[0]
    assert first_line.startswith(message + WRITTEN_BY), f"{inject}: {check} failed with {first_line!r}"
    others = {name: result for name, result in outcomes.items() if name != check}
    broken = {name: result[1][:200] for name, result in others.items() if result[0] == "failed"}
    assert not broken, f"{inject}: unrelated checks failed too: {broken}"
    # Every other check of the saved folder ran to a verdict and passed (the others may skip
    # as the tiny profile says, e.g. Phi-3's published parameter counts).
    deployed_checks = {name: result[0] for name, result in outcomes.items() if name.startswith(DEPLOYED)}
    assert len(deployed_checks) == 7 and set(deployed_checks.values()) == {"passed", "failed"}, deployed_checks
    assert list(deployed_checks.values()).count("failed") == 1, deployed_checks

    # The deployed generations come from the saved folder's tokenizer; the adapter-weights agreement
    # is made with the trained one (harness/recipe/qlora_sft.py), so it still compares like with like.
    run = _run_directory(tmp_path / "cache")
    manifest = files.read_json(run / artifacts.MANIFEST)
    deployed_rows = files.read_jsonl(run / "generations_tuned.jsonl")
    in_memory = files.read_jsonl(run / "generations_tuned_in_memory.jsonl")
    assert manifest["saved"]["deployed_generations"] == deployed_module.DEPLOYED_GENERATIONS
    assert "saved folder" in manifest["adapter"]["reload"]["agreement_because"]
    agreement = files.read_jsonl(run / manifest["adapter"]["reload"]["agreement_file"])
    same = sum(a["token_ids"] == b["token_ids"] for a, b in zip(agreement, in_memory)) / len(in_memory)
    assert same >= 0.9, f"{inject}: the reloaded adapter with the trained tokenizer matches the in-memory model on {same:.0%}"
    if inject == "saved-template":
        assert all(row["prompt"].startswith("<s><|user|>") for row in deployed_rows)
        assert not any(row["prompt"].startswith("<s>") for row in in_memory)
    if inject == "saved-generation-config-eos":
        assert "generation_config.json" in manifest["saved"]["files"]
