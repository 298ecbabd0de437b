"""Node ids of spec items, read the same way by the hooks, the xdist glue and the session's bookkeeping.

A spec item's id is ``<spec file>::<check>[<key>]``; on an xdist worker, loadgroup may append ``@<group>``.
"""

from __future__ import annotations

from ..specs.discovery import SPEC_SUFFIXES

__all__ = ["is_spec_nodeid", "item_id", "spec_file"]


def is_spec_nodeid(nodeid: str) -> bool:
    """Whether ``nodeid`` names a spec file or one of its items (not a Python test)."""
    return nodeid.split("::", 1)[0].endswith(SPEC_SUFFIXES)


def item_id(nodeid: str) -> str:
    """A spec item's id as results.json names it: without the ``@<group>`` xdist's loadgroup appends on a
    worker (spec item ids end in ``]``, so an ``@`` after the last one is that suffix)."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") >= 0 else nodeid


def spec_file(nodeid: str) -> str:
    """The spec file part of a spec item's node id (as results.json's ``spec_file`` names it)."""
    return nodeid.split("::", 1)[0]
