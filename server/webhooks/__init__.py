"""Webhooks: signed JSON POSTs to an admin's receivers when streams start and stop, chat
messages arrive, recordings and videos become ready.

outbox.py writes an event's deliveries (in the event's own transaction where it has one),
deliverer.py sends them in order per webhook from any host with retries, signing.py makes
and checks Onair-Signature, store.py checks and keeps webhooks and reads the delivery log,
api.py is the admin API, listener.py turns the live streams' events into deliveries.
"""
