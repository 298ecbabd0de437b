"""The bundled demo zoo: small real recordings and small trained models, addressed as ``zoo://task/model``."""

from __future__ import annotations

from pathlib import Path

ZOO_ROOT = Path(__file__).resolve().parent


def resolve_zoo_path(uri: str) -> Path:
    """``zoo://instruments/ast`` → the package directory of that model (``zoo://task`` → the task folder)."""
    if not uri.startswith("zoo://"):
        raise ValueError(f"{uri!r} is not a zoo:// name")
    parts = [p for p in uri[len("zoo://"):].split("/") if p]
    if not parts or any(p in ("..", ".") for p in parts):
        raise FileNotFoundError(f"{uri}: not a valid zoo name (expected zoo://task/model)")
    path = ZOO_ROOT.joinpath(parts[0], "models", *parts[1:]) if len(parts) > 1 else ZOO_ROOT / parts[0]
    if not path.exists():
        available = sorted(p.name for p in ZOO_ROOT.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise FileNotFoundError(f"{uri}: no such zoo entry (tasks: {', '.join(available) or 'none'})")
    return path
