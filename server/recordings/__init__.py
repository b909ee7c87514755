"""Recordings: capture on publish, finalize on publish_done, compress, retain, list and serve.

store.py is the recordings table and all of its SQL, service.py the app-long lifecycle
(recorders, crash recovery, deletion, retention, gauges), compression.py the compression
jobs it hands the encoder slot, api.py the HTTP, metrics.py the gauges and counters.
"""
