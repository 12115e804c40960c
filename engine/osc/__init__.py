"""Open Sound Control: pure encoding, shared non-blocking transports, the control server,
OSCQuery, and the engine's own status reports."""
