"""Background encoding: slot.py is the host's one encoder slot, which recordings compression
and VOD jobs take turns in; gate.py says when a job may start and when it pauses for live."""
