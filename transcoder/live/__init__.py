"""The live ladder: one supervised FFmpeg per rung of each live channel, from RTMP to HLS.

ladder.py chooses the rungs and their HLS codecs, encoders.py each encoder's flags and
presets, command.py the FFmpeg argument list, playlist.py the master playlist and ENDLIST,
window.py the media playlists players see (continued across FFmpeg runs, each run with its
own init) and when the master lists a rung, shedding.py what to do when FFmpeg falls behind
live and when a shed rung may come back, rung.py runs one rung's FFmpeg (restart, stall,
stop), supervisor.py one channel's rungs (catch up, shed, restore), pool.py every live
channel's ladder.
"""
