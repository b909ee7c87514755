"""Recordings: stream-copy capture while live, finalize to VOD, H.265 compression, retention.

recorder.py captures, media.py finalizes and compresses, policy.py decides what retention
deletes; every FFmpeg runs through transcoder.ffmpeg.
"""
