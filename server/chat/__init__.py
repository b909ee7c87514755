"""Chat over Socket.IO (DESIGN.md "Chat").

room.py answers connect/join/message/leave and owns chat's lifecycle; moderation.py the
moderator events; sessions.py who is connected and where; limits.py the pure rules (text,
names, token buckets, ids, address hashes); payloads.py the TypedDicts of every event;
state.py the shared live state and its in-memory form, redis_state.py the same in Redis,
fallback.py Redis with memory during an outage; sio.py the Socket.IO server and
redis_manager.py its Redis manager; store.py the PostgreSQL side; api.py the REST API.
"""
