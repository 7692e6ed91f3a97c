"""Assemble the bundled Yoda data set from its hand-written parts and write its datasheet.

    python scripts/build_dataset.py [PART.jsonl ...]      (default: data/parts/*.jsonl, sorted)

The rows are written by hand in parts (data/parts/SPEC.md says how). Rows are validated with the harness's own loader rules (a bad row stops the build, naming file
and row), written as JSON Lines to harness/data_files/yoda_sentences.jsonl in the parts' order,
and harness/data_files/DATASHEET.md is regenerated from the file (tests check it stays in sync).
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.data import validate_rows  # noqa: E402
from harness.datasheet import render_datasheet  # noqa: E402

OUT = ROOT / "harness" / "data_files" / "yoda_sentences.jsonl"
PARTS = ROOT / "data" / "parts"


def main(parts: list[str]) -> None:
    rows = []
    for part in parts:
        with open(part, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise SystemExit(f"{part}: line {number}: {error}")
    rows = validate_rows(rows, "+".join(Path(p).name for p in parts))
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    (OUT.parent / "DATASHEET.md").write_text(render_datasheet(rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:] or [str(p) for p in sorted(PARTS.glob("*.jsonl"))])
