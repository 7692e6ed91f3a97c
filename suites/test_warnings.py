"""Early warning: a deprecation the libraries did not announce in the baseline run is a change.

The run records every deprecation and future warning the libraries emit (harness.recipe.libwarnings);
a new one says what the next upgrade will break, before it breaks.
"""

import pytest

from harness.checks.verdicts import not_compared
from harness.recipe import libwarnings

pytestmark = pytest.mark.yoda_comparison


def test_no_new_library_deprecation_warning(record, baseline_entry, request):
    recorded = baseline_entry.entry.get("library_warnings")
    if recorded is None:
        not_compared(request, f"{baseline_entry.path}: the entry has no library_warnings (recorded before runs "
                              "kept them); record one with --yoda-update-baselines",
                     cause="the baseline entry does not record them")
    new = libwarnings.new_warnings(record.library_warnings, [libwarnings.LibraryWarning.from_dict(e) for e in recorded])
    assert not new, (
        f"{len(new)} library deprecation warning(s) the baseline run did not emit ({baseline_entry.context()}):\n"
        + "\n".join(f"  {libwarnings.describe(entry)}" for entry in new)
        + "\nthe libraries announce a change that will affect the recipe: read them before the next upgrade"
    )
