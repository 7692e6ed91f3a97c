"""The bundled data set's datasheet, computed from the rows (so it cannot drift from the file)."""

from __future__ import annotations

import statistics
from collections import Counter

from harness.recipe.config import DataSettings
from harness.recipe.data import split_fingerprint, split_rows

DEFAULT_EVAL_FRACTION = DataSettings().eval_fraction

INTERJECTIONS = ("Yes, hrrrm.", "Hmmm.", "Herh herh herh.", "Yes.", "Hrrmmm.", "Mmm, yes.", "Hmm, yes.",
                 "Yesss.", "Hrmm, wise this is.", "Oh, yes.")

HOW_WRITTEN = """\
Every row was written for this project, by hand, in four batches (rules in `SPEC.md` beside this
file; the batches were kept as `data/parts/part_*.jsonl` until 2026-12-02, when the bundled file
became the one source): original everyday English sentences on home and chores, weather, food and
cooking, animals, travel and transport, the city and shops, work, money, clothes, health, family,
hobbies, tools and repairs, school, books, science and the sky, technology, sport, music and art,
feelings, time and calendars, nature and gardening, across tenses, modals, negation, questions,
imperatives, adjectives, prepositional phrases and two-clause sentences. No existing corpus was
copied (no Harvard sentences, no published Yoda data, no quotes). `translation` keeps exactly the
sentence's words in Yoda's inverted order (predicate, complement or object first: "Strong in you,
the Force is."); `translation_extra` is `translation` plus one interjection. The same schema as the
recipe's `dvgodoy/yoda_sentences`, so the harness can read either. New rows are appended to
`yoda_sentences.jsonl` itself; `scripts/build_dataset.py` validates every row with the harness's
loader rules and writes this datasheet from the file."""


def interjection_of(row: dict) -> str:
    return row["translation_extra"][len(row["translation"]) + 1:]


def render_datasheet(rows: list[dict]) -> str:
    words = [len(row["sentence"].split()) for row in rows]
    yoda_words = [len(row["translation_extra"].split()) for row in rows]
    counts = Counter(interjection_of(row) for row in rows)
    split = split_rows(rows, DEFAULT_EVAL_FRACTION)
    same_words = sum(sorted(w.strip(",.!?").lower() for w in row["sentence"].split()) ==
                     sorted(w.strip(",.!?").lower() for w in row["translation"].split()) for row in rows)
    lines = [
        "# Datasheet: bundled English → Yoda sentences",
        "",
        HOW_WRITTEN,
        "",
        "## Counts",
        f"- rows: {len(rows)} (unique sentences: {len({r['sentence'].casefold() for r in rows})})",
        "- columns: sentence, translation, translation_extra",
        f"- questions: {sum(r['sentence'].endswith('?') for r in rows)}, "
        f"exclamations: {sum(r['sentence'].endswith('!') for r in rows)}",
        f"- rows whose translation uses exactly the sentence's words: {same_words}",
        "",
        "## Split (content hash of `sentence`, the recipe's default 10 % held out)",
        f"- train: {len(split.train)} rows, fingerprint {split_fingerprint(split.train)}",
        f"- evaluation: {len(split.eval)} rows, fingerprint {split_fingerprint(split.eval)}",
        "",
        "## Lengths (words)",
        "| column | min | mean | median | max |",
        "|---|---|---|---|---|",
        f"| sentence | {min(words)} | {statistics.mean(words):.2f} | {statistics.median(words):g} | {max(words)} |",
        f"| translation_extra | {min(yoda_words)} | {statistics.mean(yoda_words):.2f} | "
        f"{statistics.median(yoda_words):g} | {max(yoda_words)} |",
        "",
        "## Interjections",
        "| interjection | rows | share |",
        "|---|---|---|",
    ]
    for interjection, count in counts.most_common():
        lines.append(f"| {interjection} | {count} | {count / len(rows):.1%} |")
    return "\n".join(lines) + "\n"
