"""The page itself: templates rendered with the harness's stylesheet and script inlined, then written.

Templates are rendered with autoescape on: model outputs, data, library strings are text. The
only markup inserted unescaped is the harness's own: the stylesheet, the script and the figures'
SVG (matplotlib escapes the text it draws).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import time
from pathlib import Path

from markupsafe import Markup

from harness.checks.report.formatting import fmt_mb, fmt_number, fmt_pct, fmt_signed, sort_key

TEMPLATES = Path(__file__).parent / "templates"


def render(template: str, context: dict) -> str:
    """`template` rendered with `context`, the stylesheet and script inlined under a strict CSP."""
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    style = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return _environment().get_template(template).render(
        script=Markup(script), style=Markup(style), csp=_content_security_policy(script), **context)


def _content_security_policy(script: str) -> str:
    # Only this exact script may run (an injected <script> would be refused by the browser as
    # well as escaped), and nothing may be fetched: the file is self-contained.
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src data:; base-uri 'none'; form-action 'none'")


@functools.lru_cache(maxsize=1)
def _environment():
    # Imported on first render only, so that importing the package stays cheap.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    environment = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["num"] = fmt_number
    environment.filters["signed"] = fmt_signed
    environment.filters["mb"] = fmt_mb
    environment.filters["pct"] = fmt_pct
    environment.filters["sortkey"] = sort_key
    return environment


def write(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically: a reader (a CI artifact upload) never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def now() -> str:
    """The footer's "generated on" stamp."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
