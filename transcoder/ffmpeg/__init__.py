"""The one way FFmpeg and ffprobe are run.

process.py starts every FFmpeg (own process group, explicit minimal environment, progress
and stderr, group signals, pidfiles) and reaps the ones a killed server left; probe.py is the
one ffprobe call and what a source's JSON says; progress.py parses `-progress` and stderr.
"""
