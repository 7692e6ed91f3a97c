"""The comparison with the baseline entry: one check per recorded metric, each by its policy
(direction, band) in `harness.checks.baselines.POLICY`. A failure here is CHANGED, not BROKEN: the
run differs from the entry of its library-version set and device (or the nearest one).

Before any number is compared, the run's inputs (config digest, data split, step count, model)
must be the entry's: otherwise `test_inputs_match_the_baseline` fails with the one named
refusal and every metric that depends on them skips "refused: ...", instead of N metric failures
that follow from it. Metrics of the model alone (footprints, parameter counts, the rendered
template, the tokens, the sacrebleu signatures) are still compared when only training, data or
generation settings differ (a one-epoch run still catches template drift).
"""

import pytest

from harness.checks import baselines
from harness.checks.verdicts import BASELINE_PROPERTY, CHANGE_PROPERTY, not_compared

pytestmark = pytest.mark.yoda_comparison

# A profile that skips quality or learning checks (random weights) skips those metrics too;
# peak GPU memory is measured on a GPU only.
_MARKS = {"quality": [pytest.mark.yoda_quality], "learning": [pytest.mark.yoda_learning]}
_EXTRA = {"peak_gpu_allocated_mb": [pytest.mark.yoda_gpu]}
# What the prepared stage measures is compared there too: `-m structural` still catches template drift.
_STAGE = {name: [pytest.mark.yoda_structural] for name in baselines.PREPARED_METRICS}
METRICS = [pytest.param(name, marks=_MARKS.get(policy.group, []) + _EXTRA.get(name, []) + _STAGE.get(name, []), id=name)
           for name, policy in baselines.POLICY.items()]


# Why a comparison was not made, as the verdict groups them.
_NOT_MADE = {
    "not-recorded": "the baseline entry does not record them",
    "not-measured": "this run did not measure them",
    "not-compared": "they depend on the device and the entry ({other}) has no cross-device band for them: "
                    "record this device's entry with --yoda-update-baselines",
}


def _tell_the_summary(request, name: str, value: str) -> None:
    """A property for the verdict summary (and JUnit XML). Not `record_property`, which warns
    under the xunit2 JUnit family although the properties are written all the same."""
    request.node.user_properties.append((name, value))


def test_inputs_match_the_baseline(baseline_entry, record, request):
    _tell_the_summary(request, BASELINE_PROPERTY, baseline_entry.context())
    refusal = baseline_entry.refusal(record)
    if refusal:
        _tell_the_summary(request, CHANGE_PROPERTY, f"refused: {refusal}")
    assert refusal is None, (
        f"not compared with {baseline_entry.context()}: {refusal}. The metrics that depend on these inputs are "
        "skipped; record an entry for these inputs with --yoda-update-baselines, or run the entry's config"
    )


@pytest.mark.parametrize("metric", METRICS)
def test_metric_matches_the_baseline(metric, baseline_entry, record, run_artifacts, request):
    refusal = baseline_entry.refusal(record, baselines.scope_of(metric))
    if refusal:
        not_compared(request, f"refused: {refusal}", cause=f"refused: {refusal}")
    verdict = baseline_entry.judge(metric, record, run_artifacts("template.json"))
    if verdict.status == "not-measured" and verdict.baseline is None:
        pytest.skip(f"neither this run nor the entry has {metric}: {verdict.reason}")  # nothing was asked for
    if verdict.status in _NOT_MADE:
        not_compared(request, f"{baseline_entry.path}: {verdict.reason}",
                     cause=_NOT_MADE[verdict.status].format(other=baseline_entry.other_device))
    if not verdict.ok:
        _tell_the_summary(request, CHANGE_PROPERTY, verdict.short())
    assert verdict.ok, f"{verdict.describe()}; {baseline_entry.context()}"
