"""Check the bundled Yoda data set and regenerate its datasheet.

    python scripts/build_dataset.py

The bundled file, harness/recipe/data_files/yoda_sentences.jsonl, is the data set's one source: rows are
written by hand into it (harness/recipe/data_files/SPEC.md says how). This validates every row with the
harness's own loader rules (a bad row stops it, naming the file and the row) and regenerates
harness/recipe/data_files/DATASHEET.md from the file (tests/test_data.py checks the two stay in sync).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.recipe.data import bundled_path, load_rows  # noqa: E402
from harness.recipe.datasheet import render_datasheet  # noqa: E402


def main() -> None:
    rows, _ = load_rows("bundled")
    datasheet = bundled_path().with_name("DATASHEET.md")
    datasheet.write_text(render_datasheet(rows), encoding="utf-8")
    print(f"{bundled_path()}: {len(rows)} rows valid; wrote {datasheet}")


if __name__ == "__main__":
    main()
