"""tonegraph's node vocabulary, one family per sub-package: control, io, and more."""

if __name__ != "tonegraph.nodes":  # the folder on sys.path as a package of its own
    raise ImportError(f"import tonegraph.nodes, not {__name__}: nodes/ installs as "
                      "tonegraph.nodes (pip install -e . from the repository)")
