"""The FreqReX algorithms: pure functions of (classifier, signal, config) returning frozen results."""

from .explain import Explanation, FreqReXConfig, explain

__all__ = ["Explanation", "FreqReXConfig", "explain"]
