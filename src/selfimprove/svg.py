"""A matplotlib figure as inline SVG text: the report's plots and the adaptation methods' report sections."""

from __future__ import annotations

import io


def svg(fig) -> str:
    """`fig` rendered as an <svg> element (no XML header) and closed."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]
