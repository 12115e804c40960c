"""tonegraph engine: patch loading, graph building, node contract, clocks and execution.

Importing this package is cheap: it never imports torch, audio or GL libraries.
"""

__version__ = "0.1.0"
