"""tonegraph's node vocabulary, one family per sub-package: control, io, and more."""
