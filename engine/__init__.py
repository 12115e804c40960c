"""tonegraph engine: patch loading, graph building, node contract, clocks and execution.

Importing this package is cheap: it never imports torch, audio or GL libraries.
"""

__version__ = "0.1.0"

if __name__ != "tonegraph.engine":  # the folder on sys.path as a package of its own
    raise ImportError(f"import tonegraph.engine, not {__name__}: engine/ installs as "
                      "tonegraph.engine (pip install -e . from the repository)")
