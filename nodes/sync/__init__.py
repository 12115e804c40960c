"""Sync nodes: tempo and beat grids shared with other apps (Ableton Link)."""
