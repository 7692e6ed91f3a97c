"""The HTML report: numbers from a stored run, escaping, self-containment, the page in a browser.

The stored run (tests/fixtures/run_tiny, refreshed with scripts/make_report_fixture.py) is loaded
as `python -m harness report` loads a run directory: `harness.run.stages.Run.load(directory)`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import lxml.html
import pytest

from harness import cli, files
from harness.checks import baselines
from harness.checks.report import render_matrix_report, render_run_report
from harness.recipe.record import to_json
from harness.run.stages import Run

FIXTURE = Path(__file__).parent / "fixtures" / "run_tiny"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

# As harness.checks.plugin records them: {suite file: [(node id, outcome), ...]}.
OUTCOMES = {
    "test_memory.py": [("suites/test_memory.py::test_footprint_after_load", "passed"),
                       ("suites/test_memory.py::test_peak_gpu_memory", "skipped")],
    "test_labels.py": [("suites/test_labels.py::test_eos_keeps_its_label", "failed"),
                       ("suites/test_labels.py::test_wrapped_rows_are_max_length", "passed")],
    "test_bleu.py": [("suites/test_bleu.py::test_tuned_beats_base", "skipped")],
}
EXPECTED_STATUS = {"test_memory.py": "passed", "test_labels.py": "failed", "test_bleu.py": "skipped"}


# ------------------------------------------------------------------ helpers
def load_run(directory: Path) -> Run:
    """The run directory as the CLI loads it (harness.cli.cmd_report)."""
    return Run.load(directory)


def copy_fixture(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "run"))


def parse(path: Path):
    return lxml.html.fromstring(path.read_text(encoding="utf-8"))


def text(element) -> str:
    return " ".join(element.text_content().split())


def by_id(document, element_id: str):
    (element,) = document.xpath(f'//*[@id="{element_id}"]')
    return element


def sentence_rows(document) -> list:
    return document.xpath('//table[@id="sentences-table"]/tbody/tr')


def row_cells(table, label: str) -> list[str]:
    """The texts of the row of `table` whose header cell reads `label`."""
    (row,) = [tr for tr in table.xpath(".//tr") if tr.xpath("./th") and text(tr.xpath("./th")[0]) == label]
    return [text(td) for td in row.xpath("./td")]


def write_baseline(directory: Path, record, template: dict, **entry_fields) -> Path:
    """A baseline file whose one entry is this run with trl one release older and one packed row fewer."""
    entry = baselines.entry_from_run(record, template)
    entry["packages"] = {**entry["packages"], "trl": "1.15.0"}
    entry["version_set"] = "older-set"
    entry["metrics"]["packed_rows"]["value"] -= 1
    entry.update(entry_fields)
    path = directory / f"{record.profile}.json"
    path.write_text(json.dumps({"schema": baselines.SCHEMA, "profile": record.profile, "entries": [entry]}),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run() -> Run:
    # YODA_HARNESS_REPORT_RUN=RUN_DIR puts a real run (a GPU one, say) through the same checks.
    return load_run(Path(os.environ.get("YODA_HARNESS_REPORT_RUN", FIXTURE)))


@pytest.fixture(scope="module")
def comparison(run, tmp_path_factory):
    path = write_baseline(tmp_path_factory.mktemp("baselines"), run.record, run.artifact("template.json"))
    return baselines.compare(path, run.profile, run.record.environment.as_dict())


@pytest.fixture(scope="module")
def report(run, comparison, tmp_path_factory) -> Path:
    return render_run_report(run, tmp_path_factory.mktemp("report") / "report.html", outcomes=OUTCOMES,
                             comparison=comparison)


@pytest.fixture(scope="module")
def page(report):
    return parse(report)


# ------------------------------------------------------------------ structure and numbers
def test_the_sentence_table_has_one_row_per_evaluation_sentence(run, page):
    rows = sentence_rows(page)
    tuned = run.generations("tuned")
    assert len(rows) == run.record.data.eval_rows == len(tuned)
    assert [text(row.xpath("./td")[1]) for row in rows] == [" ".join(g["source"].split()) for g in tuned]
    headers = [text(th) for th in page.xpath('//table[@id="sentences-table"]/thead/tr/th')]
    assert headers == ["#", "English source", "reference", "base output", "tuned output", "base BLEU",
                       "tuned BLEU", "Δ BLEU", "stop", "tokens"]
    first = rows[0].xpath("./td")
    assert text(first[8]) == tuned[0]["stop_reason"]
    assert first[9].get("data-sort") == repr(float(tuned[0]["new_tokens"]))


def test_sentence_bleu_is_the_runs_and_the_worst_are_highlighted(run, page):
    scores = run.record.metrics
    rows = sentence_rows(page)
    assert [float(row.xpath("./td")[5].get("data-sort")) for row in rows] == scores.base.sentence_bleu
    assert [float(row.xpath("./td")[6].get("data-sort")) for row in rows] == scores.tuned.sentence_bleu
    worst = [row for row in rows if "worst" in row.classes]
    assert len(worst) == min(5, math.ceil(0.2 * len(rows)))
    worst_bleu = max(float(row.xpath("./td")[6].get("data-sort")) for row in worst)
    assert all(float(row.xpath("./td")[6].get("data-sort")) >= worst_bleu for row in rows if row not in worst)


def test_quality_table_shows_the_runs_corpus_scores_and_signatures(run, page):
    scores = run.record.metrics
    base_scores, tuned_scores = scores.base.versus["vs_translation_extra"], scores.tuned.versus["vs_translation_extra"]
    table = by_id(page, "quality-table")
    for metric, label in (("bleu", "BLEU vs translation_extra"), ("chrf", "chrF vs translation_extra"),
                          ("ter", "TER vs translation_extra")):
        base, tuned, _delta, _verdict = row_cells(table, label)
        assert float(base) == pytest.approx(getattr(base_scores, metric), abs=0.005)
        assert float(tuned) == pytest.approx(getattr(tuned_scores, metric), abs=0.005)
    base, tuned, *_ = row_cells(table, "stop rate (EOS before max_new_tokens)")
    assert base == f"{100 * scores.base.stop_rate:.1f} %"
    assert tuned == f"{100 * scores.tuned.stop_rate:.1f} %"
    base, tuned, *_ = row_cells(table, "mean output length (words)")
    assert float(tuned) == pytest.approx(scores.tuned.mean_words, abs=0.005)
    assert float(base) == pytest.approx(scores.base.mean_words, abs=0.005)
    signatures = text(by_id(page, "signatures"))
    for signature in tuned_scores.signatures.by_metric().values():
        assert signature in signatures


def test_memory_and_parameters_show_measured_and_predicted(run, page):
    structure = run.record.structure
    table = by_id(page, "memory-table")
    measured, predicted, delta, match = row_cells(table, "footprint after prepare + LoRA")
    assert f"{structure.footprint_adapted_bytes:,} bytes" in measured
    assert f"{structure.footprint_adapted_bytes / 1e6:,.2f} MB" in measured
    assert f"{structure.predicted.footprint_adapted_bytes:,} bytes" in predicted
    assert match == "✓ exact"
    measured, predicted, _delta, _match = row_cells(table, "footprint after 4-bit load")
    assert f"{structure.footprint_loaded_bytes:,} bytes" in measured
    assert row_cells(table, "trainable parameters")[:2] == [f"{structure.trainable_parameters:,}"] * 2
    # The saved adapter is compared at its saved dtype (bf16 here), not at the fp32 in-memory size.
    assert row_cells(table, f"saved adapter data ({', '.join(run.record.adapter.dtypes)})")[3] == "✓ exact"
    reference = by_id(page, "reference-table")
    assert row_cells(reference, "trainable parameters")[:2] == ["12,582,912", "n/a"]


def test_header_names_the_run_and_every_suite_outcome(run, page):
    record = run.record
    facts = text(by_id(page, "facts"))
    device = record.environment.device
    for value in (record.profile, record.model, record.created, record.key,
                  record.environment.python, device["name"] if device["kind"] == "cpu" else device["cuda"]):
        assert value in facts
    packages = [text(li) for li in by_id(page, "packages").xpath("./li")]
    for name, version in record.environment.packages.items():
        assert any(p.startswith(f"{name} {version}") for p in packages), name
    strip = {text(li.xpath("./a")[0]): text(li.xpath('.//span[contains(@class, "badge")]')[0])
             for li in by_id(page, "suite-strip").xpath("./li")}
    assert strip == EXPECTED_STATUS
    assert text(by_id(page, "verdict")) == "failed"
    suites = text(by_id(page, "suites-table"))
    for results in OUTCOMES.values():
        for nodeid, _outcome in results:
            assert nodeid.split("::")[1] in suites


def test_header_shows_the_baseline_entry_its_deltas_and_the_libraries_that_changed(page):
    line = text(by_id(page, "baseline-line"))
    assert "entry older-set" in line and "library versions differ" in line
    assert "trl 1.15.0 → 1.16.0" in line
    assert "outside tolerance: packed_rows" in line
    (trl,) = [li for li in by_id(page, "packages").xpath("./li") if text(li).startswith("trl ")]
    assert "changed" in trl.classes and "baseline 1.15.0" in text(trl)
    _current, _baseline, delta, tolerance, status = row_cells(by_id(page, "baseline-table"), "packed_rows")
    assert (delta, tolerance, status) == ("+1", "exact", "outside")
    assert row_cells(by_id(page, "baseline-table"), "bleu")[-1] == "ok"


def test_figures_and_the_chat_template_with_special_tokens(run, page):
    assert len(by_id(page, "figures").xpath(".//*[local-name()='svg']")) == 2
    template = run.artifact("template.json")
    rendered = by_id(page, "rendered-example")
    specials = [text(s) for s in rendered.xpath('.//span[@class="special"]')]
    tokens = run.record.tokens
    assert [s for s in specials if s in tokens.role_markers] == list(tokens.role_markers)
    assert tokens.eos in specials
    if run.profile == "tiny":  # Phi-3's layout, exactly
        assert specials == ["<|user|>", "<|end|>", "<|assistant|>", "<|end|>", "<|endoftext|>"]
    assert len(rendered.xpath('.//span[@class="nl"]')) == template["rendered"].count("\n")
    assert rendered.text_content().replace("↵", "") == template["rendered"]
    prompt = by_id(page, "generation-prompt")
    assert prompt.text_content().replace("↵", "") == template["generation_prompt"]
    prompt_specials = [text(s) for s in prompt.xpath('.//span[@class="special"]')]
    assert prompt_specials[-1] == tokens.role_markers[-1]
    if run.profile == "tiny":
        assert prompt_specials == ["<|user|>", "<|end|>", "<|assistant|>"]
    chips = by_id(page, "token-chips").xpath("./li")
    assert len(chips) == len(template["tokens"])
    assert specials[0].startswith([c for c in chips if "special" in c.classes][0].text)


def test_the_baselines_loss_curve_is_drawn_when_the_entry_has_one(run, tmp_path):
    history = [{"step": p.step, "loss": p.loss + 0.5} for p in run.record.training.loss_history]
    path = write_baseline(tmp_path, run.record, run.artifact("template.json"), loss_history=history)
    comparison = baselines.compare(path, run.profile, run.record.environment.as_dict())
    page = parse(render_run_report(run, tmp_path / "report.html", comparison=comparison))
    figure = by_id(page, "figures").xpath(".//figure")[0]
    assert "with the baseline's curve" in text(figure)
    assert "baseline" in [t.strip() for t in figure.xpath(".//*[local-name()='text']/text()")]


def test_a_structural_run_says_its_quality_figures_mean_nothing(tmp_path):
    directory = copy_fixture(tmp_path)
    manifest = files.read_json(directory / "run.json")
    manifest.update(profile="phi3-shape", profile_kind="structural")
    manifest["structure"]["footprint_loaded_bytes"] = 2_206_340_000
    files.write_json(directory / "run.json", manifest)
    page = parse(render_run_report(load_run(directory), tmp_path / "report.html"))
    notices = [text(p) for p in page.xpath('//p[contains(@class, "structural")]')]
    assert any("random weights" in n and "mean nothing" in n for n in notices)
    assert "Random weights" in text(by_id(page, "quality"))
    # The profile's own skip reasons (harness.recipe.profiles) are shown too.
    assert any(n.startswith("The quality checks skip on this profile: phi3-shape has random weights")
               for n in map(text, page.xpath('//p[contains(@class, "notice")]')))
    reference = by_id(page, "reference-table")
    assert row_cells(reference, "footprint after 4-bit load (MB)") == ["2,206.34", "2,206.34", "✓"]
    assert row_cells(reference, "trainable parameters")[2] == "✗"


def test_a_session_that_ran_no_check_says_so(run, tmp_path):
    page = parse(render_run_report(run, tmp_path / "report.html", outcomes={}))
    assert text(by_id(page, "verdict")) == "no checks ran"
    assert text(by_id(page, "suite-strip")) == "no suite checks ran in this session"


def test_the_cli_renders_a_run_directory(tmp_path, capsys):
    output = tmp_path / "out" / "report.html"
    assert cli.main(["report", str(FIXTURE), "-o", str(output), "--baselines-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(output)
    page = parse(output)
    assert len(sentence_rows(page)) == files.read_json(FIXTURE / "run.json")["data"]["eval_rows"]
    assert "not given" in text(page.xpath("//header")[0])  # no suite outcomes from a run directory
    assert "no baseline entry for cpu" in text(by_id(page, "baseline-line"))


def test_a_corrupt_baseline_still_gives_a_report_and_says_why_it_has_no_deltas(tmp_path, capsys):
    (tmp_path / "tiny.json").write_text("{ not json")
    output = tmp_path / "report.html"
    assert cli.main(["report", str(FIXTURE), "-o", str(output), "--baselines-dir", str(tmp_path)]) == 0
    error = capsys.readouterr().err
    assert "report without baseline deltas" in error and "tiny.json" in error
    assert len(sentence_rows(parse(output))) == files.read_json(FIXTURE / "run.json")["data"]["eval_rows"]


# ------------------------------------------------------------------ safety
SCRIPT = "<script>alert(1)</script>"
CELL_BREAK = "</td><td>x"
IMG = "<img src=x onerror=alert(1)>"


def test_model_data_and_library_strings_show_as_text(tmp_path):
    directory = copy_fixture(tmp_path)
    tuned = files.read_jsonl(directory / "generations_tuned.jsonl")
    base = files.read_jsonl(directory / "generations_base.jsonl")
    tuned[0].update(text=SCRIPT + CELL_BREAK, raw=SCRIPT + CELL_BREAK + "<|end|>", source=IMG)
    base[0].update(source=IMG, stop_reason=CELL_BREAK)
    files.write_jsonl(directory / "generations_tuned.jsonl", tuned)
    files.write_jsonl(directory / "generations_base.jsonl", base)
    manifest = files.read_json(directory / "run.json")
    manifest["model"] = IMG
    manifest["environment"]["packages"]["trl"] = SCRIPT
    manifest["phase_seconds"][SCRIPT] = 0.5  # drawn into the phase figure's SVG
    files.write_json(directory / "run.json", manifest)
    template = files.read_json(directory / "template.json")
    template["rendered"] = SCRIPT + template["rendered"]
    files.write_json(directory / "template.json", template)

    html = render_run_report(load_run(directory), tmp_path / "report.html", outcomes=OUTCOMES).read_text("utf-8")
    page = lxml.html.fromstring(html)

    assert SCRIPT not in html and IMG not in html and "onerror=alert(1)>" not in html
    assert len(page.xpath("//script")) == 1 and "alert" not in page.xpath("//script")[0].text
    assert page.xpath("//img") == [] and page.xpath("//*[@onerror]") == []
    rows = sentence_rows(page)
    assert len(rows) == len(tuned)
    assert {len(row.xpath("./td")) for row in rows} == {10}  # no cell was broken open
    cells = rows[0].xpath("./td")
    assert cells[1].text_content() == IMG
    tuned_cell = cells[4]
    assert tuned_cell.text_content().startswith(SCRIPT + CELL_BREAK)
    assert SCRIPT + CELL_BREAK in tuned_cell.xpath(".//details/pre")[0].text_content()
    assert CELL_BREAK in cells[3].text_content()
    assert IMG in text(by_id(page, "facts"))
    assert any(SCRIPT in li.text_content() for li in by_id(page, "packages").xpath("./li"))
    assert by_id(page, "rendered-example").text_content().startswith(SCRIPT)


# ------------------------------------------------------------------ self-contained
def test_the_page_is_self_contained(report, page):
    assert page.xpath('//link[@rel="stylesheet"]') == []
    for element in page.xpath("//*[@src or @href]"):
        for attribute in ("src", "href"):
            value = (element.get(attribute) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "file:")), (element.tag, value)
    assert all(img.get("src", "").startswith("data:") for img in page.xpath("//img"))
    assert len(page.xpath("//*[local-name()='svg']")) >= 2
    assert all(not s.get("src") for s in page.xpath("//script"))
    styles = [style.text or "" for style in page.xpath("//*[local-name()='style']")] + [
        element.get("style") for element in page.xpath("//*[@style]")]
    for style in styles:  # the page's stylesheet and matplotlib's SVG styles: nothing fetched
        assert "@import" not in style
        assert all(url.startswith(("#", "data:")) for url in style.split("url(")[1:]), style


def test_the_only_script_is_the_one_the_content_security_policy_allows(page):
    (meta,) = page.xpath('//meta[@http-equiv="Content-Security-Policy"]')
    policy = dict(part.strip().split(" ", 1) for part in meta.get("content").split(";"))
    assert policy["default-src"] == "'none'"
    (script,) = page.xpath("//script")
    digest = base64.b64encode(hashlib.sha256(script.text.encode("utf-8")).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"


# ------------------------------------------------------------------ matrix
MATRIX_ROWS = [
    {"version_set": "current", "status": "passed", "reason": "every suite passed",
     "packages": {"transformers": "5.23.0", "trl": "1.16.0"},
     "suites": {"test_labels.py": "passed", "test_bleu.py": "skipped"},
     "metrics": {"bleu": 12.5, "trainable_parameters": 40960}},
    {"version_set": "seed-2024", "status": "cannot-run",
     "reason": "torch 2.4.1 has no wheel for Python 3.13 <here>", "packages": {"transformers": "4.46.2"},
     "suites": {}, "metrics": {}},
]


def test_the_matrix_report_shows_each_set_and_why_one_could_not_run(tmp_path):
    page = parse(render_matrix_report(MATRIX_ROWS, tmp_path / "matrix.html"))
    rows = page.xpath('//table[@id="matrix-table"]/tbody/tr')
    assert [text(row.xpath("./th")[0]) for row in rows] == ["current", "seed-2024"]
    assert [text(row.xpath("./td")[0]) for row in rows] == ["passed", "cannot-run"]
    assert text(rows[1].xpath('./td[@class="reason"]')[0]) == "torch 2.4.1 has no wheel for Python 3.13 <here>"
    assert "12.5000" in text(rows[0]) and "40,960" in text(rows[0])
    assert len(page.xpath("//script")) == 1


def test_the_run_report_includes_the_matrix_when_given(run, tmp_path):
    page = parse(render_run_report(run, tmp_path / "report.html", matrix_rows=MATRIX_ROWS))
    assert "torch 2.4.1 has no wheel" in text(by_id(page, "matrix"))


# ------------------------------------------------------------------ in a browser
def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; it is in requirements/current.txt)"
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return (f"{' and '.join(missing)} not installed: apt-get install chromium chromium-driver "
                "(Debian packages; .ci/run installs them)")
    return None


@pytest.fixture
def browser(tmp_path):
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _column(driver, index: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#sentences-table tbody tr'))"
        ".map(r => r.cells[arguments[0]].getAttribute('data-sort'));", index)


def _numbers(values: list[str]) -> list[float]:
    return [float(v) if v else math.inf for v in values]  # no value sorts last


def _visible_rows(driver):
    from selenium.webdriver.common.by import By

    return [row for row in driver.find_elements(By.CSS_SELECTOR, "#sentences-table tbody tr") if row.is_displayed()]


def _save_screenshot(driver, tmp_path: Path) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(height + 200, 16000))
    driver.execute_script("window.scrollTo(0, 0)")
    path = tmp_path / "report.png"
    assert driver.save_screenshot(str(path)), "Chromium returned no screenshot"
    if os.environ.get("YODA_HARNESS_SCREENSHOT_DIR"):
        directory = Path(os.environ["YODA_HARNESS_SCREENSHOT_DIR"])
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, directory / "report.png")
    return path


@pytest.mark.slow
def test_the_page_in_headless_chromium_sorts_filters_and_logs_no_error(report, run, browser, tmp_path):
    from selenium.webdriver.common.by import By

    eval_rows = run.record.data.eval_rows
    browser.get(report.resolve().as_uri())
    assert len(_visible_rows(browser)) == eval_rows

    # A numeric column whose rows are not already in order (any run's base BLEU varies).
    headers = browser.find_elements(By.CSS_SELECTOR, "#sentences-table thead th")
    column = next(i for i in (5, 6, 7, 9) if _numbers(_column(browser, i)) != sorted(_numbers(_column(browser, i))))
    header = headers[column]
    header.find_element(By.TAG_NAME, "button").click()
    ascending = _numbers(_column(browser, column))
    assert ascending == sorted(ascending) and header.get_attribute("aria-sort") == "ascending"
    header.find_element(By.TAG_NAME, "button").click()
    values = [v for v in ascending if v != math.inf]
    missing = [math.inf] * (len(ascending) - len(values))
    assert _numbers(_column(browser, column)) == sorted(values, reverse=True) + missing
    assert header.get_attribute("aria-sort") == "descending"
    browser.find_element(By.XPATH, '//th[.//button[text()="#"]]//button').click()
    assert [float(v) for v in _column(browser, 0)] == [float(i) for i in range(1, eval_rows + 1)]

    source = run.generations("tuned")[3]["source"]
    browser.find_element(By.ID, "sentence-filter").send_keys(source)
    shown = _visible_rows(browser)
    assert 1 <= len(shown) < eval_rows and all(source.lower() in row.text.lower() for row in shown)
    counter = browser.find_element(By.CSS_SELECTOR, ".filters .count")
    assert counter.text == f"{len(shown)} of {eval_rows} sentences shown"
    browser.find_element(By.ID, "sentence-filter").clear()
    browser.execute_script("document.getElementById('sentence-filter').dispatchEvent(new Event('input'))")
    assert len(_visible_rows(browser)) == eval_rows
    browser.find_element(By.ID, "worst-only").click()
    shown = _visible_rows(browser)
    assert shown and len(shown) < eval_rows and all("worst" in row.get_attribute("class") for row in shown)
    browser.find_element(By.ID, "worst-only").click()

    screenshot = _save_screenshot(browser, tmp_path)
    assert screenshot.stat().st_size > 10_000
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors


def test_the_verdict_lists_broken_first_then_changed(run, comparison, tmp_path):
    verdicts = {"headline": "1 thing broke: test_eos (EOS masked); 1 thing changed: bleu 1.83 -> 0.91",
                "compared_with": "baseline tiny.json", "gated_off": False,
                "broken": [{"nodeid": "suites/test_labels.py::test_eos", "verdict": "BROKEN",
                            "summary": "test_eos (EOS masked)", "message": "EOS masked"}],
                "changed": [{"nodeid": "suites/test_baseline.py::test_metric_matches_the_baseline[bleu]",
                             "verdict": "CHANGED", "summary": "bleu 1.83 -> 0.91", "message": ""}]}
    page = parse(render_run_report(run, tmp_path / "r.html", outcomes=OUTCOMES, comparison=comparison,
                                   verdicts=verdicts))
    block = text(by_id(page, "verdicts"))
    assert block.startswith("1 thing broke: test_eos (EOS masked); 1 thing changed: bleu 1.83 -> 0.91")
    assert block.index("BROKEN (an invariant failed)") < block.index("CHANGED (a difference from the baseline)")
    assert "test_metric_matches_the_baseline[bleu]: bleu 1.83 -> 0.91" in text(by_id(page, "changed"))
    assert "test_eos: EOS masked" in text(by_id(page, "broken"))


# ------------------------------------------------------------------ what users deploy: the saved folder
def with_saved_folder(tmp_path: Path, saved) -> Run:
    """The fixture run with a `saved` record (harness/recipe/deployed.py; or its JSON) as a trained run records it."""
    directory = copy_fixture(tmp_path)
    manifest = files.read_json(directory / "run.json")
    manifest["saved"] = to_json(saved)
    files.write_json(directory / "run.json", manifest)
    return load_run(directory)


@pytest.fixture(scope="module")
def tiny(shared_models_dir):
    from tests.saved_folder import tiny_checkpoint

    return tiny_checkpoint(shared_models_dir)


def test_a_run_that_did_not_read_the_saved_folder_says_what_its_tuned_outputs_used(tmp_path):
    manifest = files.read_json(FIXTURE / "run.json")
    assert "saved" not in manifest  # recorded before 2026-12-06
    page = parse(render_run_report(load_run(FIXTURE), tmp_path / "report.html", outcomes=OUTCOMES))
    assert "generated with the tokenizer the model trained with, not the saved one" in text(by_id(page, "deployed-from"))
    assert page.xpath('//*[@id="saved-tokens"]') == []


def test_the_saved_folder_is_shown_beside_what_the_model_trained_with(tmp_path, tiny):
    from tests.saved_folder import saved_record, trained_tokenizer

    saved = saved_record(tmp_path / "saved", tiny, trained_tokenizer(tiny))
    page = parse(render_run_report(with_saved_folder(tmp_path, saved), tmp_path / "report.html", outcomes=OUTCOMES))
    said = text(by_id(page, "deployed-from"))
    assert "The tuned outputs (quality, per-sentence table) are the deployed model's" in said
    assert "generating with the tokenizer loaded from the saved folder" in said and "adapter/" in said
    assert "tokenizer_config.json" in said and "chat_template.jinja" in said
    assert page.xpath('//*[@id="saved-problems"]') == []
    table = by_id(page, "saved-tokens")
    assert row_cells(table, "eos") == ["<|endoftext|> (32000)", "<|endoftext|> (32000)", "adapter/tokenizer_config.json", "✓"]
    assert row_cells(table, "pad") == ["<unk> (0)", "<unk> (0)", "adapter/tokenizer_config.json", "✓"]
    assert row_cells(table, "generation config eos_token_id")[-1] == "✓"
    assert table.xpath('.//tr[contains(@class, "row-fail")]') == []
    prompts = by_id(page, "saved-prompts")
    assert len(prompts.xpath(".//h4")) == 2 and all("✓ same" in text(h) for h in prompts.xpath(".//h4"))


def test_a_saved_folder_that_differs_is_shown_as_the_suite_names_it(tmp_path, tiny):
    from tests.saved_folder import saved_record, setting, trained_tokenizer

    saved = saved_record(tmp_path / "saved", tiny, trained_tokenizer(tiny), setting("eos_token", lambda t: "<|end|>"))
    page = parse(render_run_report(with_saved_folder(tmp_path, saved), tmp_path / "report.html", outcomes=OUTCOMES))
    (problem,) = by_id(page, "saved-problems").xpath(".//li")
    assert text(problem).startswith("adapter/tokenizer_config.json eos_token: trained '<|endoftext|>' (id 32000), "
                                    "saved '<|end|>' (id 32007) (written by ")
    table = by_id(page, "saved-tokens")
    failing = [text(row.xpath("./th")[0]) for row in table.xpath('.//tr[contains(@class, "row-fail")]')]
    assert failing == ["eos"]
    assert row_cells(table, "eos")[1] == "<|end|> (32007)"


def test_saved_folder_strings_show_as_text(tmp_path, tiny):
    from tests.saved_folder import saved_record, trained_tokenizer

    saved = to_json(saved_record(tmp_path / "saved", tiny, trained_tokenizer(tiny)))
    saved["tokenizer"]["saved"]["eos"] = SCRIPT
    saved["template"]["saved"]["one user turn"]["text"] = IMG
    saved["files"].append(SCRIPT)
    html = render_run_report(with_saved_folder(tmp_path, saved), tmp_path / "report.html", outcomes=OUTCOMES).read_text("utf-8")
    assert SCRIPT not in html and IMG not in html
    page = lxml.html.fromstring(html)
    assert page.xpath("//img") == [] and len(page.xpath("//script")) == 1
    assert SCRIPT in text(by_id(page, "saved-problems"))


def test_every_status_a_comparison_can_decide_has_a_row_in_the_report():
    """A metric another device's entry has no cross-device band for is 'not-compared': the report
    names it so (it was a KeyError that failed `pytest suites --yoda-report` with an INTERNALERROR)."""
    import re

    from harness.checks.report import baseline as report_baseline

    source = (Path(__file__).resolve().parents[1] / "harness" / "checks" / "baselines.py").read_text(encoding="utf-8")
    decided = set(re.findall(r'Verdict\(name, "([a-z-]+)"', source))
    assert decided and decided <= set(report_baseline._ROW_STATUS)
    assert report_baseline._ROW_STATUS["not-compared"] == "not compared"
