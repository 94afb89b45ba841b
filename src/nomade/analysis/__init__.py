"""Derivative analysis of time series (stdlib only): local regression at the newest sample
(``regression``), series preparation against gaps and resets (``samples``), roots to a limit and
their band (``limits``), trend classes (``trend``), numbers in words (``words``), and the views the
status and disk commands show (``views``, which reads the store: imported on first use so the
recorder, which uses ``regression``, never loads the store)."""

from .trend import (ACCELERATING, DECELERATING, GROWING, SHRINKING, STABLE, UNKNOWN, Trend,
                    analyse)

__all__ = ["Trend", "analyse", "Analysis", "STABLE", "GROWING", "ACCELERATING", "DECELERATING",
           "SHRINKING", "UNKNOWN"]


def __getattr__(name):
    if name == "Analysis":
        from .views import Analysis
        return Analysis
    raise AttributeError(f"module 'nomade.analysis' has no attribute {name!r}")
