"""Store a finished run directory's records as a test fixture for the HTML report.

    python scripts/make_report_fixture.py RUN_DIR [--dest tests/fixtures]

writes DEST/run_<profile>/ (replacing what was there) with the run directory's top-level JSON and
JSONL artifacts: run.json, template.json, generations_{base,tuned,tuned_in_memory}.jsonl,
collated_batch.json, completion_only_batch.json (whichever the run has). Not copied: adapter/ (the
weights), trainer/ (checkpoints), and anything else that is not a top-level .json/.jsonl file.

Trimmed, to keep the fixture small:
- collated_batch.json and completion_only_batch.json keep their first BATCH_ROWS rows: every
  top-level per-row list (input_ids, labels, attention_mask, decoded, prompt_lengths,
  sequence_lengths, ...) is cut to the same rows, so the batch stays structurally valid (each row
  keeps its full padded length; the completion-only batch stays padded to the original batch's
  longest row).
Kept whole: run.json and the generations, because the report shows one row per evaluation sentence
(`run.json` data.eval_rows) and its numbers must be the run's.

Files are written with harness.run.artifacts' own writers, so the fixture reads like a run directory
(`harness.run.stages.Run.load(directory)`, as `python -m harness report` loads one).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from harness import files
from harness.run import artifacts

ROOT = Path(__file__).resolve().parents[1]
BATCH_ROWS = 2
BATCHES = ("collated_batch.json", "completion_only_batch.json")


def trim_batch(batch: dict, rows: int = BATCH_ROWS) -> dict:
    """The batch's first `rows` rows: every top-level list as long as the batch is cut alike."""
    length = len(batch["input_ids"])
    return {key: value[:rows] if isinstance(value, list) and len(value) == length else value
            for key, value in batch.items()}


def run_artifacts(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl"))


def make_fixture(run_dir: Path, dest_root: Path) -> Path:
    manifest = files.read_json(run_dir / artifacts.MANIFEST)
    if manifest.get("status") != artifacts.COMPLETE:
        raise SystemExit(f"{run_dir}: run.json status is {manifest.get('status')!r}, not a finished run")
    dest = dest_root / f"run_{manifest['profile']}"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for source in run_artifacts(run_dir):
        target = dest / source.name
        if source.suffix == ".jsonl":
            files.write_jsonl(target, files.read_jsonl(source))
        elif source.name in BATCHES:
            files.write_json(target, trim_batch(files.read_json(source)))
        else:
            files.write_json(target, files.read_json(source))
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory (holds run.json)")
    parser.add_argument("--dest", type=Path, default=ROOT / "tests" / "fixtures",
                        help="where run_<profile>/ is written (default tests/fixtures)")
    args = parser.parse_args(argv)
    if not (args.run_dir / artifacts.MANIFEST).is_file():
        parser.error(f"{args.run_dir}: no {artifacts.MANIFEST}; expected a finished run directory")
    dest = make_fixture(args.run_dir, args.dest)
    for path in sorted(dest.iterdir()):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
