"""Control nodes: the CHOP-like vocabulary every patch needs (constants, LFOs, mappers,
filters, envelopes, triggers, math)."""
