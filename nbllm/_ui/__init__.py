"""The notebook front ends: the %llm_model / %%llm / %%llm_eval magics, display, the
ipywidgets form and sandbox.

May import: every layer below; IPython and ipywidgets lazily (inside functions).
Never: be imported by a lower layer; import the nbllm facade (see nbllm/_layers.ALLOWED).
"""
