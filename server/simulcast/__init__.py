"""Simulcast: each live channel relayed to YouTube, Twitch or any RTMP/RTMPS destination.

store.py checks and keeps destinations (keys sealed by sealed.py), api.py is their REST API,
relays.py runs one supervised FFmpeg per enabled destination of a channel live on this host
(the command line is transcoder/relay.py), metrics.py counts what they do.
"""
