"""Load testing: per-request metrics (pure), the load runner, plots.

May import: _evaluation (its runner and progress), _io, _core, _base; matplotlib lazily.
Never: import _scale or _ui.
"""
