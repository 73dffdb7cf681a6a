"""The built-in demo server (OpenAI-compatible, 127.0.0.1 only) and its canned replies.

May import: _core, _base, the standard library.
Never: import _io (it is the other side of the wire), evaluation or UI code; bind anything
but 127.0.0.1.
"""
