"""OSC nodes: cues out to lighting desks and VJ software (osc.out), control in (osc.in)."""
