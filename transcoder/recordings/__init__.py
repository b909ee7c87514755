"""Recordings: stream-copy capture while live, finalize to VOD, H.265 compression, retention.

recorder.py captures, media.py finalizes and compresses, policy.py decides what to delete
and when compression may run, process.py runs each ffmpeg in its own process group.
"""
