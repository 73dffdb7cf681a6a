"""The layers of nbllm, lowest first: the one place their order is written.

Read by tests/test_layers.py (which builds the import graph of ``nbllm/`` with ``ast`` and fails on
a cycle or on an import that goes up) and by scripts/relayout.py; drawn in docs/DESIGN.md. Data
only: nothing imports this module at run time.

A module may import its own layer (without a cycle) and any layer of a LOWER tier. Layers in the
same tier are siblings that never import each other. Every import counts, at the top of a module,
under ``if TYPE_CHECKING:`` and inside a function alike: a lazy import is still a dependency, and
going up lazily is how the old ``_eval`` <-> ``_eval_views`` cycle hid. The one exception is the
facade ``nbllm/__init__.py``, the top of the package, which imports from any layer (lazily for the
heavy ones).
"""

from __future__ import annotations

__all__ = ["ALLOWED", "FACADE", "LAYERS", "TOP_LEVEL"]

# Tiers, lowest first; each a tuple of sibling subpackages of nbllm/.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_base",),  # errors, secret masking, argument checks, number formatting
    ("_core",),  # pure: config, fields, templates, requests, framing, extraction, call state machine
    ("_io", "_server"),  # the HTTP and handler shells and the calling API | the demo server
    ("_evaluation",),  # evaluate() into pandas: plan, run, cache, score, views, statistics
    ("_scale", "_loadtest"),  # evaluate()'s entry and its background / out-of-core / Dask runs | load testing
    ("_ui",),  # notebook front ends: magics, display, widgets
)

# The facade: the package itself, above every layer.
FACADE = "nbllm"

# Modules kept directly in nbllm/ (public paths, or data) and the layer each counts as.
TOP_LEVEL: dict[str, str] = {
    "nbllm._layers": "_base",  # this table
    "nbllm.scorers": "_core",  # public module (nbllm.scorers): pure scoring functions and judge specs
}

# Known, reasoned exceptions: (importing module, imported module) -> why. Keep it short.
ALLOWED: dict[tuple[str, str], str] = {
    ("nbllm._ui.magics", "nbllm"): (
        "%llm_model form looks up nbllm.model_form through the facade at call time, so a missing "
        "ipywidgets extra (the facade's lazy import failing) becomes a usage error"
    ),
}
