"""Recordings: capture on publish, finalize on publish_done, compress, retain, list and serve.

store.py is the state machine in SQL, service.py the app-long lifecycle (recorders, crash
recovery, compression, retention, gauges), gate.py when compression may run, api.py the HTTP.
"""

from server.recordings.api import routes
from server.recordings.service import Recordings, recordings
from server.recordings.store import new_id

__all__ = ["Recordings", "new_id", "recordings", "routes"]
