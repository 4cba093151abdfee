"""The dashboard's static files, shipped in the package: no build step, no CDN.

uPlot (MIT, its LICENSE kept beside it) is pinned by the version in its file name;
`dashboard.js` and `dashboard.css` are ours.
"""

from __future__ import annotations

from pathlib import Path

UPLOT_VERSION = "1.6.32"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/dashboard/static"

UPLOT_JS_URL = f"{STATIC_PREFIX}/uplot-{UPLOT_VERSION}.iife.min.js"
UPLOT_CSS_URL = f"{STATIC_PREFIX}/uplot-{UPLOT_VERSION}.min.css"
JS_URL = f"{STATIC_PREFIX}/dashboard.js"
CSS_URL = f"{STATIC_PREFIX}/dashboard.css"

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".uplot": "text/plain; charset=utf-8"}


def static_file(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of a shipped file, or None (no path escapes the dir)."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = STATIC_DIR / name
    if not path.is_file():
        return None
    return path.read_bytes(), _TYPES.get(path.suffix, "application/octet-stream")
