"""The transcoding library the server uses; it never imports `server`.

layout.py names MEDIA_DIR's folders and the loopback RTMP URL; ffmpeg/ runs every FFmpeg
and ffprobe; live/ is the live ladder; recordings/ captures, finalizes and compresses;
vod.py turns uploads into ladders; schedule.py says when background work may run;
metrics.py and waiting.py are shared helpers.
"""
