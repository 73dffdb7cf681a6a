"""evaluate() into pandas: plan, run, on-disk cache, frame, scorers, rescore, the df.llm views
and their statistics.

May import: _io, _core, _base, nbllm.scorers; pandas/numpy inside functions or here only.
Never: import _scale, _loadtest or _ui, or IPython/ipywidgets display code; the runner
never prints (progress goes through a callback).
"""
