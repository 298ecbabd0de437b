"""The bundled demo zoo: small real recordings and small trained models, addressed as ``zoo://task/name``.

``zoo://instruments/ast`` names a model (``<task>/models/ast``); a name with no model of that name
falls back to the task folder itself, so ``zoo://instruments/eval`` names a dataset. See README.md.
"""

from __future__ import annotations

from pathlib import Path

ZOO_ROOT = Path(__file__).resolve().parent


def resolve_zoo_path(uri: str) -> Path:
    """``zoo://task/name`` → ``ZOO_ROOT/task/models/name`` if it exists, else ``ZOO_ROOT/task/name``.

    ``zoo://task`` names the task folder. ``.`` and ``..`` components are refused, so a zoo name
    never leaves the zoo.
    """
    if not isinstance(uri, str) or not uri.startswith("zoo://"):
        raise ValueError(f"{uri!r} is not a zoo:// name")
    parts = [p for p in uri[len("zoo://"):].split("/") if p]
    if not parts or any(p in ("..", ".") or "\\" in p for p in parts):
        raise FileNotFoundError(f"{uri}: not a valid zoo name (expected zoo://task/name)")
    task = ZOO_ROOT / parts[0]
    if len(parts) == 1:
        candidates = [task]
    else:
        candidates = [task.joinpath("models", *parts[1:]), task.joinpath(*parts[1:])]
    for path in candidates:
        if path.exists():
            return path
    if not task.is_dir():
        available = sorted(p.name for p in ZOO_ROOT.iterdir()
                           if p.is_dir() and not p.name.startswith(("_", ".")))
        raise FileNotFoundError(f"{uri}: no such zoo task {parts[0]!r} (tasks: {', '.join(available) or 'none'})")
    entries = sorted({p.name for p in (task / "models").iterdir() if p.is_dir()} if (task / "models").is_dir() else set())
    entries += sorted(p.name for p in task.iterdir() if p.is_dir() and p.name != "models")
    raise FileNotFoundError(f"{uri}: no such entry in zoo task {parts[0]!r} (models and data: {', '.join(entries)})")
