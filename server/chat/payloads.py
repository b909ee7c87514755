"""The Socket.IO payloads DESIGN.md "Chat" names, as TypedDicts."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

Role = Literal["viewer", "moderator", "bot"]
MessageError = Literal["rate_limited", "too_long", "empty", "banned", "slow_mode", "not_joined"]


class UserPayload(TypedDict):
    """Who wrote a message: `user` in join acks and in `message` events."""

    id: str
    name: str
    role: Role


class MessagePayload(TypedDict):
    """Server → client `message`; also one entry of a join's history."""

    id: str
    channel: str
    user: UserPayload
    text: str
    ts: str


class JoinAck(TypedDict):
    """The ack of `join`."""

    ok: bool
    user: UserPayload
    history: list[MessagePayload]
    viewers: int
    live: bool
    slow_mode: int  # beyond DESIGN: the room's slow mode, so a late joiner knows it


class Ack(TypedDict):
    """Every other ack: `{ok}`, `{ok, id}` or `{ok: false, error}`."""

    ok: bool
    id: NotRequired[str]
    error: NotRequired[str]


class DeletedPayload(TypedDict):
    """Server → client `deleted`."""

    channel: str
    id: str


class ViewersPayload(TypedDict):
    """Server → client `viewers`."""

    channel: str
    count: int


class StreamPayload(TypedDict):
    """Server → client `stream`."""

    channel: str
    live: bool


class SlowModePayload(TypedDict):
    """Server → client `slow_mode`."""

    channel: str
    seconds: int
