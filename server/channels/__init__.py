"""Channels: store.py is the channels table (all its SQL, stream keys, the cached channel
list) behind the app's CHANNELS key; api.py is the REST API."""
