"""MIDI nodes: controllers, keyboards and clock in (midi.in); notes, CC and clock out (midi.out)."""
