"""Who is connected: one Session per Socket.IO connection, a Member per room it joined."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.channels.tokens import ChannelToken
from server.chat.limits import TokenBucket
from server.chat.payloads import UserPayload


@dataclass
class Member:
    """A connection's presence in one room."""

    user: UserPayload
    moderator_id: int | None


@dataclass
class Session:
    """One Socket.IO connection: where it comes from (hashed), what it may do, where it is."""

    address_hash: str
    moderator: ChannelToken | None  # a moderator token of the channel it names
    bucket: TokenBucket  # messages
    join_bucket: TokenBucket
    joined: dict[str, Member] = field(default_factory=dict)
