"""Keep other libraries' scratch files inside the tool's own folders.

An audit writes only into its report folder and its cache folder. matplotlib, which draws the report's
figures, would otherwise create ``~/.config/matplotlib`` and write its font list into
``$XDG_CACHE_HOME/matplotlib`` (or ``~/.cache/matplotlib``) on first import. :func:`private_matplotlib`
points it at ``<cache>/matplotlib`` instead (a temporary folder, deleted at exit, when there is no
cache) — only when the user has not chosen a folder with ``MPLCONFIGDIR`` and matplotlib is not yet
imported (then its folders are already decided, by someone else). matplotlib resolves both folders once,
at import, so the variable is set only while this function imports it and removed again: nothing else in
the process (a user's own tests under pytest) sees a changed environment.

A cache folder that cannot be written (a read-only project) is not an error of the audit's: the font
cache then goes to a temporary folder. Only when no writable folder exists at all does it raise, with
one :class:`NoWritableFolder` that names both folders and the fix (``MPLCONFIGDIR``), never matplotlib's own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["private_matplotlib", "NoWritableFolder"]


class NoWritableFolder(ValueError):
    """No folder matplotlib could write its font cache into: the message names them and the fix."""


def private_matplotlib(cache_dir: str | Path | None) -> None:
    """Import matplotlib (Agg) with its config/cache folder under ``cache_dir``, else a temporary folder (see
    the module docstring); :class:`NoWritableFolder` naming the folders when neither can be written."""
    if "MPLCONFIGDIR" in os.environ or "matplotlib" in sys.modules:
        return
    from .paths import unwritable

    folder, why = None, None
    if cache_dir is not None:
        folder = Path(cache_dir) / "matplotlib"
        why = unwritable(folder, "cache")
        folder = None if why else folder
    if folder is None:
        try:
            folder = Path(tempfile.mkdtemp(prefix="freqrex-mpl-"))
        except OSError as exc:
            raise NoWritableFolder(f"matplotlib (the report's figures) needs a writable folder for its font cache: "
                          f"{why + '; ' if why else ''}the temporary folder {tempfile.gettempdir()} is not writable "
                          f"either ({exc.strerror or type(exc).__name__}); set MPLCONFIGDIR to a writable folder"
                          ) from None
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["MPLCONFIGDIR"] = str(folder)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401  (reads or builds the font list now, in ``folder``)

        matplotlib.get_configdir(), matplotlib.get_cachedir()  # memoised by matplotlib from here on
    finally:
        os.environ.pop("MPLCONFIGDIR", None)
