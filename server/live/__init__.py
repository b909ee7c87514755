"""The live path, in the direction it runs.

hooks.py answers nginx-rtmp (HTTP only) → streams.py records publishers and live sessions,
tells everyone (events) and starts or stops → ladders.py, the pool of every live channel's
FFmpeg ladder (transcoder.live). Beside it: playlists.py serves playlists, viewers.py counts
the players fetching them, thumbnails.py cuts stills for the channel list, metrics.py.
Of a host's workers only the owner (server/owner.py) decides publish hooks and runs ladders.
status.py writes what this host's live channels are doing to PostgreSQL; panel.py reads it for
the dashboard and directory.py for "who is live" on any host; rtmp_stat.py reads nginx-rtmp.
"""
