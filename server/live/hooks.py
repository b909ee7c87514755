"""nginx-rtmp's HTTP hooks: allow, deny or rename a publisher. Only the HTTP side is here:
what a decision does (live, offline, the ladder) is Streams' work."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.channels.store import CHANNELS
from server.live.metrics import HOOK_DECISIONS
from server.live.streams import STREAMS
from server.owner import OWNER
from server.settings import SETTINGS
from server.web.errors import Handler

log = logging.getLogger("onair.ingest")
routes = web.RouteTableDef()

# nginx-rtmp form fields are short; anything long is not nginx.
MAX_FIELD = 512


class HookRejected(Exception):
    """Deny the hook; `status` is what nginx gets and `reason` what the log and metric say."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check_caller(request: web.Request) -> None:
    """Hooks come from nginx over loopback (or the allow-list) with the shared secret."""
    settings = request.app[SETTINGS]
    remote = request.remote or ""
    try:
        address = ipaddress.ip_address(remote)
        allowed = address.is_loopback or remote in settings.hook_allow
    except ValueError:
        allowed = False
    secret = request.query.get("secret", "")
    if not allowed:
        raise HookRejected(403, "caller not allowed")
    if not settings.hook_secret or not hmac.compare_digest(
        secret.encode(), settings.hook_secret.encode()
    ):
        raise HookRejected(403, "bad secret")


async def read_form(request: web.Request) -> dict[str, str]:
    """The hook's form fields; 400 when it is not the form nginx-rtmp sends."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise HookRejected(400, "not a form")
    try:
        form = await request.post()
    except ValueError as err:
        raise HookRejected(400, "malformed form") from err
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    for name in ("name", "clientid"):
        value = values.get(name, "")
        if not value or len(value) > MAX_FIELD:
            raise HookRejected(400, f"missing or bad field {name}")
    if values.get("app", "live") != "live":
        raise HookRejected(403, "unknown application")
    return values


class NotOwner(HookRejected):
    """Another worker of this host owns the hooks' decisions: nginx asks the next one on a 503
    (proxy_next_upstream http_503 non_idempotent, nginx/onair.conf.template)."""

    def __init__(self) -> None:
        super().__init__(503, "not-owner")


def require_owner(request: web.Request) -> None:
    """publish and publish_done change what runs: only the host's owner decides them."""
    if not request.app[OWNER].is_owner:
        raise NotOwner()


HookHandler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


def hook(kind: str) -> Callable[[HookHandler], Handler]:
    """Wrap a hook handler: caller check, form parsing, one metric and one log line per decision."""

    def wrap(handler: HookHandler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                check_caller(request)
                form = await read_form(request)
                response: web.StreamResponse = await handler(request, form)
                HOOK_DECISIONS.labels(kind, "accepted").inc()
                return response
            except HookRejected as err:
                HOOK_DECISIONS.labels(kind, err.reason.split(" ")[0]).inc()
                # Never log the form's name: before the rename it is the stream key. A worker
                # that does not own says so to every publish: not worth a line each.
                log.log(
                    logging.DEBUG if isinstance(err, NotOwner) else logging.INFO,
                    "hook rejected kind=%s reason=%r remote=%s",
                    kind,
                    err.reason,
                    request.remote,
                )
                return web.Response(status=err.status, text=err.reason)

        return run

    return wrap


@routes.post("/hooks/rtmp/publish")
@hook("publish")
async def on_publish(request: web.Request, form: dict[str, str]) -> web.StreamResponse:
    """Key → channel; accepted publishers are renamed to the slug by a 302."""
    require_owner(request)
    app = request.app
    channel = await app[CHANNELS].for_key(form["name"])
    if channel is None:
        raise HookRejected(403, "unknown key")
    if channel.disabled:
        raise HookRejected(403, "disabled channel")
    streams = app[STREAMS]
    if streams.by_slug(channel.slug) is not None:
        raise HookRejected(403, "already live")
    await streams.go_live(channel.slug, form["clientid"])
    log.info("publish accepted channel=%s clientid=%s", channel.slug, form["clientid"])
    # nginx-rtmp renames the stream to a Location without a scheme: the key stays private.
    return web.Response(status=302, headers={"Location": channel.slug})


@routes.post("/hooks/rtmp/publish_done")
@hook("publish_done")
async def on_publish_done(request: web.Request, form: dict[str, str]) -> web.StreamResponse:
    """The publisher left: offline, and the ladder stops (playlists get ENDLIST)."""
    require_owner(request)
    slug = await request.app[STREAMS].go_offline(form["clientid"])
    if slug is not None:
        log.info("publish done channel=%s clientid=%s", slug, form["clientid"])
    return web.Response(text="ok")


@routes.post("/hooks/rtmp/update")
@hook("update")
async def on_update(request: web.Request, form: dict[str, str]) -> web.StreamResponse:
    """Every ≤10 s: a rotated key, a disabled channel or a failed ladder drops the publisher."""
    app = request.app
    if not app[OWNER].is_owner:
        # Any worker answers: with notify_update_strict a failed hook drops the publisher, and
        # while the owner changes hands (or is busy) nobody else may fail it. What PostgreSQL
        # knows is checked here; a failed ladder is the owner's to report at its next update.
        return await update_from_database(request, form)
    streams = app[STREAMS]
    slug = streams.publishers.get(form["clientid"])
    if slug is None:
        # Not one of ours (e.g. the server restarted and reconcile did not see it yet).
        return web.Response(text="ok")
    if slug in streams.failed:
        # Nobody can watch: drop the publisher so OBS reconnects, and the new publish
        # starts a fresh ladder (and, after an nginx reload, lands in a worker FFmpeg
        # can pull from again).
        log.warning("publisher dropped channel=%s reason=transcoder-failed", slug)
        raise HookRejected(403, "transcoder failed")
    channel = await app[CHANNELS].for_key(form["name"])
    if channel is None or channel.slug != slug:
        log.info("publisher dropped channel=%s reason=key-rotated", slug)
        raise HookRejected(403, "key rotated")
    if channel.disabled:
        log.info("publisher dropped channel=%s reason=disabled", slug)
        raise HookRejected(403, "disabled channel")
    return web.Response(text="ok")


async def update_from_database(request: web.Request, form: dict[str, str]) -> web.StreamResponse:
    """The update hook in a worker that does not own: a rotated key or a disabled channel
    drops the publisher; anything else keeps it."""
    channel = await request.app[CHANNELS].for_key(form["name"])
    if channel is None:
        # Publishers on this host are only ever accepted with a channel's key.
        log.info("publisher dropped reason=key-rotated clientid=%s", form["clientid"])
        raise HookRejected(403, "key rotated")
    if channel.disabled:
        log.info("publisher dropped channel=%s reason=disabled", channel.slug)
        raise HookRejected(403, "disabled channel")
    return web.Response(text="ok")
