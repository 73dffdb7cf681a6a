"""The I/O shells over the core: HTTP clients (sync + async), Python handler providers, the
registry on disk, the background event loop, model discovery, and the calling API
(complete/stream/acomplete/astream).

May import: _core, _base, httpx (lazily where import time matters).
Never: import _server, evaluation, load testing or UI code; display anything; import
pandas, IPython or ipywidgets.
"""
