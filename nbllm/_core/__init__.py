"""The pure core: Endpoint config and its field table, templates, request building, stream
framing and decoding, JSONPath extraction, the call state machine, results.

May import: _base, the standard library, orjson.
Never: do I/O (no sockets, files, threads, event loops, clocks that change results), import
httpx, IPython, pandas or ipywidgets, or print.
"""
