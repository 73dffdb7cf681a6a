"""Scale-out evaluation: background runs, out-of-core partitions, Dask.

May import: _evaluation, _io, _core, _base; dask lazily.
Never: import _loadtest or _ui, display anything.
"""
