"""REST API: webhooks (admin only).

POST/GET /api/webhooks, DELETE /api/webhooks/<id>, GET /api/webhooks/<id>/deliveries and
POST /api/webhooks/<id>/deliveries/<delivery id>/redeliver. The secret is shown once, in the
answer to POST.
"""

from __future__ import annotations

from aiohttp import web

from server.db import DB
from server.settings import SETTINGS
from server.web.auth import require_admin
from server.web.errors import ApiError, NotFound, read_json_object
from server.web.net import is_private_host
from server.webhooks import store
from server.webhooks.deliverer import DELIVERER
from server.webhooks.signing import new_secret

routes = web.RouteTableDef()

FIELDS = ("url", "events", "channels")


def _id_in_path(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"no {what} {raw[:20]}")
    return int(raw)


@routes.post("/api/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    """Admin: add {url, events, channels?}; the answer carries the signing secret, once."""
    require_admin(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ApiError(f"unknown fields: {', '.join(unknown)[:200]}")
    for name in ("url", "events"):
        if name not in body:
            raise ApiError(f"{name} is required")
    receiver = store.parse_url(body["url"])
    events = store.check_events(body["events"])
    channels = store.check_channels(body.get("channels"))
    settings = request.app[SETTINGS]
    if not settings.webhook_allow_private and await is_private_host(receiver.host, receiver.port):
        raise ApiError(
            f"url {receiver.host} is a private, loopback or link-local address: webhooks go to "
            "receivers on the internet (an operator can allow private ones with "
            "ONAIR_WEBHOOK_ALLOW_PRIVATE)"
        )
    secret = new_secret()
    made = await store.create(
        request.app[DB],
        settings.secret_key,
        url=receiver.url,
        events=events,
        channels=channels,
        secret=secret,
    )
    return web.json_response(made.json() | {"secret": secret}, status=201)


@routes.get("/api/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    """Admin: every webhook, without secrets."""
    require_admin(request)
    return web.json_response([w.json() for w in await store.list_all(request.app[DB])])


@routes.delete("/api/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    """Admin: remove a webhook; its deliveries not yet sent are dropped with it."""
    require_admin(request)
    await store.delete(request.app[DB], _id_in_path(request, "webhook_id", "webhook"))
    return web.Response(status=204)


@routes.get("/api/webhooks/{webhook_id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """Admin: the webhook's last deliveries, newest first: state, attempts, last error."""
    require_admin(request)
    db = request.app[DB]
    webhook = await store.get(db, _id_in_path(request, "webhook_id", "webhook"))
    return web.json_response(
        [store.delivery_json(r) for r in await store.deliveries(db, webhook.id)]
    )


@routes.post("/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    """Admin: send a delivery's body again, as a new delivery at the end of the queue."""
    require_admin(request)
    webhook_id = _id_in_path(request, "webhook_id", "webhook")
    delivery_id = _id_in_path(request, "delivery_id", "delivery")
    made = await store.redeliver(request.app[DB], webhook_id, delivery_id)
    request.app[DELIVERER].wake()
    return web.json_response(store.delivery_json(made), status=201)
