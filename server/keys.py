"""Every web.AppKey in one place."""

from __future__ import annotations

import aiohttp
import asyncpg
from aiohttp import web

from server.events import EventBus
from server.live import LiveRegistry
from server.settings import Settings

SETTINGS = web.AppKey[Settings]("settings")
DB = web.AppKey[asyncpg.Pool]("db")
HTTP = web.AppKey[aiohttp.ClientSession]("http")
LIVE = web.AppKey[LiveRegistry]("live")
EVENTS = web.AppKey[EventBus]("events")
