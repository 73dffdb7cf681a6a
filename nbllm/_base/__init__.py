"""Shared leaves: the error tree, secret masking, argument checks, the one way to print a cost.

May import: the standard library and each other.
Never: import another nbllm layer, do I/O, import httpx/pandas/ipywidgets/IPython.
"""
