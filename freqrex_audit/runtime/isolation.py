"""Keep other libraries' scratch files inside the tool's own folders.

An audit writes only into its report folder and its cache folder. matplotlib, which draws the report's
figures, would otherwise create ``~/.config/matplotlib`` and write its font list into
``$XDG_CACHE_HOME/matplotlib`` (or ``~/.cache/matplotlib``) on first import. :func:`private_matplotlib`
points it at ``<cache>/matplotlib`` instead (a temporary folder, deleted at exit, when there is no
cache) — only when the user has not chosen a folder with ``MPLCONFIGDIR`` and matplotlib is not yet
imported (then its folders are already decided, by someone else). matplotlib resolves both folders once,
at import, so the variable is set only while this function imports it and removed again: nothing else in
the process (a user's own tests under pytest) sees a changed environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["private_matplotlib"]


def private_matplotlib(cache_dir: str | Path | None) -> None:
    """Import matplotlib (Agg) with its config/cache folder under ``cache_dir`` (see the module docstring)."""
    if "MPLCONFIGDIR" in os.environ or "matplotlib" in sys.modules:
        return
    if cache_dir is not None:
        folder = Path(cache_dir) / "matplotlib"
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="freqrex-mpl-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["MPLCONFIGDIR"] = str(folder)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401  (reads or builds the font list now, in ``folder``)

        matplotlib.get_configdir(), matplotlib.get_cachedir()  # memoised by matplotlib from here on
    finally:
        os.environ.pop("MPLCONFIGDIR", None)
