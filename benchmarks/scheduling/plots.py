"""PNG plots for BENCHMARKS.md: a simulated day's load against the limit, and energy against the limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
import numpy as np

from benchmarks.scheduling.fleet_sim import SimResult

__all__ = ["plot_day", "plot_energy_vs_limit"]

PHASE_COLOURS = ("#1f77b4", "#2ca02c", "#d62728")


def plot_day(result: SimResult, uncontrolled: SimResult | None, path: Path, title: str) -> None:
    """The site's measured current per phase over the day, the limit, and (faint) the uncontrolled load."""
    hours = np.arange(result.site_load.shape[0]) * result.step_s / 3600.0
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=110)
    if uncontrolled is not None and uncontrolled.site_load.size:
        free_hours = np.arange(uncontrolled.site_load.shape[0]) * uncontrolled.step_s / 3600.0
        ax.plot(
            free_hours,
            uncontrolled.site_load[:, :3].max(axis=1),
            color="0.75",
            lw=0.8,
            label="uncontrolled (max phase)",
        )
    for p in range(3):
        ax.plot(hours, result.site_load[:, p], color=PHASE_COLOURS[p], lw=0.9, label=f"L{p + 1}")
    ax.plot(hours, result.site_limit, color="black", ls="--", lw=1.2, label="limit")
    ax.set_xlabel("hour of the day")
    ax.set_ylabel("site current per phase (A)")
    ax.set_xlim(5, min(30, hours[-1] if hours.size else 30))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, ncol=5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_energy_vs_limit(
    curves: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], path: Path, title: str
) -> None:
    """One panel per limit kind: energy delivered (% of demand) against the limit (% of the uncontrolled peak).

    ``curves[kind][algorithm]`` is a list of (limit fraction, energy %); an algorithm named "offline optimum" is
    drawn as a thick line.
    """
    kinds = list(curves)
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.4), dpi=110, squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for name, points in curves[kind].items():
            x = [100 * f for f, _ in points]
            y = [e for _, e in points]
            style = {"color": "black", "lw": 2.2} if name == "offline optimum" else {"marker": "o", "ms": 3, "lw": 1.2}
            ax.plot(x, y, label=name, **style)
        ax.set_title({"power": "one aggregate power limit", "phase": "per-phase current limits"}.get(kind, kind))
        ax.set_xlabel("site limit (% of the uncontrolled peak)")
        ax.set_ylabel("energy delivered (% of demand)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
