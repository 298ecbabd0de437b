"""Perceptibility and faithfulness metrics (the cross-model work extends this module)."""

from __future__ import annotations

import numpy as np


def snr_db(x: np.ndarray, x_adv: np.ndarray) -> float:
    """10·log10(‖x‖² / ‖x′ − x‖²); +inf when nothing changed."""
    x = np.asarray(x, dtype=np.float64)
    noise = float(np.sum((np.asarray(x_adv, dtype=np.float64) - x) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(x ** 2) / noise))


def linf(x: np.ndarray, x_adv: np.ndarray) -> float:
    """Largest absolute sample change."""
    return float(np.max(np.abs(np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64))))
