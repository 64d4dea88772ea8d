"""Charts for operators, drawn with matplotlib (no display needed)."""

from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure

from core.services.stats import Stats


def usage_chart(stats: Stats, title: str, model_name: Callable[[str], str] = str) -> bytes:
    """Spend by model (by its display name) over the period, as a PNG bar chart."""
    usage = sorted(stats.usage, key=lambda u: u.spent)[-12:]
    figure = Figure(figsize=(8, 4.5), dpi=100)
    axes = figure.add_subplot()
    if usage:
        names = [model_name(u.model_id) for u in usage]
        roubles = [u.spent / 100 for u in usage]
        bars = axes.barh(names, roubles, color="#3a7bd5")
        for bar, u in zip(bars, usage, strict=True):
            axes.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f"  {u.requests}",
                va="center",
                fontsize=8,
            )
        axes.set_xlabel("₽")
    else:
        axes.text(0.5, 0.5, "—", ha="center", va="center", fontsize=24)
        axes.set_axis_off()
    axes.set_title(title)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
