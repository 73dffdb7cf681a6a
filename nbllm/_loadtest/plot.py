"""Plots of a ``LoadResult`` (matplotlib, imported on first use)."""

from __future__ import annotations

from typing import Any

__all__ = ["plot"]

KINDS = ("latency", "pareto", "ttft")


def plot(result: Any, kind: str = "latency", ax: Any = None) -> Any:
    """``latency``: TTFT/ITL/E2E p50 and p99 against the load level; ``pareto``: output tokens/s
    against p50 TTFT and E2E (each point a level: the throughput-latency curve); ``ttft``: TTFT
    distribution per level (box plot of the measured requests)."""
    from .._base.exceptions import UsageError

    if kind not in KINDS:
        raise UsageError(f"must be one of {', '.join(KINDS)}, got {kind!r}", field="kind")
    import matplotlib

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4))
    s = result.summary
    if kind == "latency":
        x = list(range(len(s)))
        for metric, style in (("ttft", "o-"), ("itl", "s-"), ("e2e", "^-")):
            for q, alpha in (("p50", 1.0), ("p99", 0.45)):
                ax.plot(x, s[f"{metric}_{q}_s"] * 1000, style, alpha=alpha, label=f"{metric.upper()} {q}")
        ax.set_xticks(x, list(s["level"]))
        ax.set_yscale("log")
        ax.set_xlabel("load level")
        ax.set_ylabel("latency (ms)")
        ax.set_title("Latency percentiles vs load")
        ax.legend(fontsize="small", ncol=3)
    elif kind == "pareto":
        for metric, style in (("ttft_p50_s", "o-"), ("e2e_p50_s", "s-")):
            ax.plot(s["output_tok_s"], s[metric] * 1000, style, label=metric.replace("_s", ""))
        for _, r in s.iterrows():
            ax.annotate(str(r["level"]), (r["output_tok_s"], r["e2e_p50_s"] * 1000), fontsize="small")
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel("latency (ms)")
        ax.set_title("Throughput vs latency")
        ax.legend(fontsize="small")
    else:
        rows = result.requests
        ok = rows[(rows["status"] == "ok") & rows["measured"]]
        levels = list(s["level"])
        data = [list(ok[ok["level"] == lv]["ttft_s"].dropna() * 1000) for lv in levels]
        ax.boxplot(data, tick_labels=levels)
        ax.set_xlabel("load level")
        ax.set_ylabel("TTFT (ms)")
        ax.set_title("TTFT distribution")
    _ = matplotlib  # imported first so a missing matplotlib fails before drawing
    return ax
