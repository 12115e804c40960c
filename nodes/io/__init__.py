"""Input/output nodes: console printing and recording features to files."""
