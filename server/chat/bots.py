"""Bots: a channel's bot token posts chat messages through the API, shown with role `bot`.

A bot is made like a moderator (its token's name is its chat name) and revoked like any token;
its messages pass the same text rules and its own rate limit, are exempt from slow mode, and
are stored, fanned out and kept in history like everyone's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from server.channels.tokens import ChannelToken
from server.chat.limits import TokenBucket, message_text, refuse
from server.chat.payloads import Ack, UserPayload
from server.settings import Settings

# Chat.publish: (channel, user, text, address hash, ban keys, slow_exempt=) -> ack
Publish = Callable[..., Awaitable[Ack]]


class Bots:
    """Each bot token's rate limit, and its way into the room."""

    def __init__(self, settings: Settings, publish: Publish) -> None:
        self.settings = settings
        self.publish = publish
        self.buckets: dict[int, TokenBucket] = {}  # token id -> its messages' bucket

    async def post(self, bot: ChannelToken, raw: object, address_hash: str) -> Ack:
        """`bot` says `raw` in its channel: `{ok, id}` or `{ok: false, error}` as a socket's
        `message` ack would be."""
        text, wrong = message_text(raw)
        if wrong is not None:
            return refuse(wrong)
        settings = self.settings
        bucket = self.buckets.setdefault(
            bot.id, TokenBucket(settings.chat_rate_messages, settings.chat_rate_seconds)
        )
        if not bucket.has_token():
            return refuse("rate_limited")
        bucket.take()
        user: UserPayload = {"id": f"b-{bot.id}", "name": bot.name, "role": "bot"}
        return await self.publish(bot.channel, user, text, address_hash, [], slow_exempt=True)
