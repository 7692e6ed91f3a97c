"""Values as the page shows them (the templates' filters), and the value tests every section shares.

Recorded values may be missing, None or of the wrong type (older runs, a failed phase): every
function here accepts anything and shows "—" where there is no number to show.
"""

from __future__ import annotations

import math
from typing import Any

from harness.recipe.metrics import MB


def is_number(value: Any) -> bool:
    # bool is an int to Python, but a flag to the page ("yes"/"no"), never a quantity.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def item_at(items: list, index: int):
    """items[index], or None past the end (recorded lists may be shorter than their partners)."""
    return items[index] if index < len(items) else None


def fmt_number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.{digits}g}"  # 0.0034, not 0.00
        return f"{value:,.{digits}f}"
    return str(value)


def fmt_signed(value: Any, digits: int = 2) -> str:
    if not is_number(value):
        return "—"
    if isinstance(value, int):
        return f"{value:+,}"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:+.{digits}g}"
    return f"{value:+,.{digits}f}"


def fmt_mb(byte_count: Any) -> str:
    return "—" if not is_number(byte_count) else f"{byte_count / MB:,.2f} MB"


def fmt_pct(share: Any) -> str:
    return "—" if not is_number(share) else f"{100 * share:.1f} %"


def sort_key(value: Any) -> str:
    """`data-sort` attribute: a number as a plain decimal, anything else empty (sorted last)."""
    if is_number(value) and math.isfinite(value):
        return repr(float(value))
    return ""
