"""The bundled demo zoo: small real recordings and small trained models, addressed as ``zoo://task/name``.

``zoo://instruments/ast`` names a model (``<task>/models/ast``); a name with no model of that name
falls back to the task folder itself, so ``zoo://instruments/eval`` names a dataset. See README.md.
"""

from __future__ import annotations

from ..runtime.paths import ZOO_ROOT, resolve_zoo_path

__all__ = ["ZOO_ROOT", "resolve_zoo_path"]
