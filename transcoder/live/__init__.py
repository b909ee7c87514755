"""The live ladder: one supervised FFmpeg per live channel, from RTMP to an HLS ladder.

ladder.py chooses the rungs and their HLS codecs, encoders.py each encoder's flags and
presets, command.py the one FFmpeg argument list, playlist.py the master playlist and
ENDLIST, window.py the media playlists players see (continued across FFmpeg runs, each run
with its own init) and when the master is listed, shedding.py what to do when FFmpeg falls
behind live, supervisor.py runs one channel's FFmpeg (restart, stall, shed, stop), pool.py
holds every live channel's ladder.
"""
