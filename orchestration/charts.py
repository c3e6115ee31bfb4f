"""Metadata a person can read in the Dagster UI: markdown previews and small PNG charts.

Charts are rendered with matplotlib's Agg backend (no display needed) and attached as markdown images with
a base64 data URI, which the Dagster UI shows inline; the same PNG is also written under data/plots/ so it
can be opened outside the UI.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import polars as pl

PLOTS_DIR = Path("data/plots")  # relative to the working directory; SIGHTLINE_PLOTS_DIR overrides it


def markdown_table(df: pl.DataFrame, max_rows: int = 8) -> str:
    """The first rows of a frame as a markdown table (floats rounded, long text cut)."""
    if df.is_empty():
        return "_no rows_"
    head = df.head(max_rows)

    def cell(v) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4g}"
        s = str(v)
        return (s[:40] + "...") if len(s) > 43 else s.replace("|", "\\|")

    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in head.iter_rows()]
    if df.height > max_rows:
        lines.append(f"\n_{max_rows} of {df.height} rows_")
    return "\n".join(lines)


def _figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def save_png(png: bytes, name: str) -> Path:
    plots = Path(os.environ.get("SIGHTLINE_PLOTS_DIR") or PLOTS_DIR)
    plots.mkdir(parents=True, exist_ok=True)
    path = plots / name
    path.write_bytes(png)
    return path.resolve()


def occupancy_chart(df: pl.DataFrame, *, time_col: str, zone_col: str, value_col: str, title: str) -> bytes:
    """People present per zone over the day: one line per zone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2))
    for (zone,), part in df.sort(time_col).group_by([zone_col], maintain_order=True):
        ax.plot(part[time_col].to_list(), part[value_col].to_list(), label=str(zone), linewidth=1)
    ax.set_title(title)
    ax.set_ylabel("people present (mean per minute)")
    ax.legend(ncol=7, fontsize=7, loc="upper right")
    fig.autofmt_xdate()
    return _figure_png(fig)


def heatmap_image(
    df: pl.DataFrame, *, camera_col: str, x_col: str, y_col: str, value_col: str, title: str
) -> bytes:
    """Where people stood: one panel per camera, grid cells coloured by sample count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cams = sorted(df[camera_col].unique().to_list())
    fig, axes = plt.subplots(1, max(len(cams), 1), figsize=(3.2 * max(len(cams), 1), 2.4), squeeze=False)
    for ax, cam in zip(axes[0], cams, strict=False):
        part = df.filter(pl.col(camera_col) == cam).group_by([x_col, y_col]).agg(pl.col(value_col).sum())
        nx, ny = int(part[x_col].max()) + 1, int(part[y_col].max()) + 1
        grid = np.zeros((ny, nx))
        grid[part[y_col].to_numpy().astype(int), part[x_col].to_numpy().astype(int)] = part[
            value_col
        ].to_numpy()
        ax.imshow(grid, cmap="inferno", interpolation="nearest")
        ax.set_title(str(cam), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return _figure_png(fig)
