"""Uploads: tus 1.0 resumable uploads into MEDIA_DIR/uploads, then a VOD ladder per video.

store.py is the uploads and videos tables and all of their SQL, paths.py
where their files live, service.py the app-long lifecycle (space checks, acceptance,
termination, expiry), jobs.py the VOD jobs it hands the encoder slot, tus.py the protocol,
api.py tokens, listings, deletion and the ladder's files, metrics.py the counters.
"""
