"""`/_emulator/...`: look inside the emulator and steer it over HTTP (any host, no auth).

GET    /_emulator/                         credentials, base URLs and counts
GET    /_emulator/requests?limit=N         the request log (newest last)
POST   /_emulator/reset                    forget all state
GET    /_emulator/faults                   active faults with hit counters
POST   /_emulator/faults                   add: Fault fields as JSON, or {"spec": "graph:status=429,count=2"}
DELETE /_emulator/faults[/<id>]            remove one or all
POST   /_emulator/clock/advance            {"seconds": 3600}
POST   /_emulator/entra/expire-access-tokens   {"user": "<upn|oid>"} optional
POST   /_emulator/entra/revoke-refresh-tokens  {"user": "<upn|oid>"} optional
GET    /_emulator/graph/events | /_emulator/graph/online-meetings | /_emulator/graph/cancellations
POST   /_emulator/graph/online-meetings/<id>/attendance-reports   {"start","end","records":[...]}
POST   /_emulator/graph/online-meetings/<id>/recordings   {"content_base64", "content_type"?, "created"?,
                                                           "transcript"?: WebVTT text of the same call}
GET    /_emulator/acs/emails | /_emulator/acs/identities | /_emulator/acs/sms
GET    /_emulator/acs/event-subscriptions      Event Grid webhook subscriptions (delivery reports)
POST   /_emulator/acs/event-subscriptions      {"endpoint": url, "headers": {...}?, "event_types": [...]?,
                                                "verify": ca_path?}: validation handshake, then 201
DELETE /_emulator/acs/event-subscriptions[/<id>]
GET    /_emulator/acs/delivery-reports         queued ("pending") and posted ("delivered") report events
POST   /_emulator/acs/delivery-reports/deliver post the queued reports now
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ._util import json_response, read_json

if TYPE_CHECKING:
    from .core import Emulator

logger = logging.getLogger(__name__)


class Inspector:
    """Serves the `/_emulator` control API for one emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self._url_map = _url_map()

    def handle(self, request: Request) -> Response:
        """Dispatch one control request."""
        try:
            endpoint, args = self._url_map.bind_to_environ(request.environ).match()
        except HTTPException as exc:
            return json_response({"error": exc.name}, status=exc.code or 404)
        body, error = read_json(request)
        if error:
            return json_response({"error": error}, status=400)
        try:
            return getattr(self, f"_{endpoint}")(request, body or {}, **args)
        except (KeyError, TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, status=400)

    def _index(self, request: Request, body: Any) -> Response:
        emu = self._emulator
        here = emu.endpoints(None if request.host.split(":")[0] in emu.hosts else f"https://{request.host}")
        return json_response(
            {
                "tenant_id": emu.tenant_id,
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
                "service_account_upn": emu.service_account_upn,
                "users": [u.upn for u in emu.config.users],
                "endpoints": dataclasses.asdict(here),
                "counts": {
                    "requests": len(emu.requests),
                    "events": len(emu.graph.events),
                    "online_meetings": len(emu.graph.online_meetings),
                    "sent_emails": len(emu.acs.sent_emails),
                    "identities": len(emu.acs.identities),
                    "faults": len(emu.faults),
                },
            }
        )

    def _requests(self, request: Request, body: Any) -> Response:
        limit = int(request.args.get("limit", 100))
        items = list(self._emulator.requests)[-limit:] if limit > 0 else []
        return json_response({"value": [r.to_dict() for r in items]})

    def _reset(self, request: Request, body: Any) -> Response:
        self._emulator.reset()
        return json_response(None, status=204)

    def _faults_list(self, request: Request, body: Any) -> Response:
        return json_response({"value": [f.to_dict() for f in self._emulator.faults]})

    def _faults_add(self, request: Request, body: Any) -> Response:
        if "spec" in body:
            added = self._emulator.faults.add_spec(str(body["spec"]))
        else:
            fields = {k: v for k, v in body.items() if k not in ("id", "hits", "seen")}
            added = [self._emulator.faults.add(**fields)]
        return json_response({"value": [f.to_dict() for f in added]}, status=201)

    def _faults_clear(self, request: Request, body: Any) -> Response:
        self._emulator.faults.clear()
        return json_response(None, status=204)

    def _fault_delete(self, request: Request, body: Any, fault_id: int) -> Response:
        found = self._emulator.faults.remove(fault_id)
        return json_response(None, status=204) if found else json_response({"error": "no such fault"}, status=404)

    def _clock_advance(self, request: Request, body: Any) -> Response:
        self._emulator.clock.advance(float(body["seconds"]))
        return json_response({"now": self._emulator.clock.time()})

    def _expire(self, request: Request, body: Any) -> Response:
        self._emulator.entra.expire_access_tokens(body.get("user"))
        return json_response(None, status=204)

    def _revoke(self, request: Request, body: Any) -> Response:
        self._emulator.entra.revoke_refresh_tokens(body.get("user"))
        return json_response(None, status=204)

    def _graph_events(self, request: Request, body: Any) -> Response:
        with self._emulator.lock:
            return json_response(
                {
                    "value": list(self._emulator.graph.events.values()),
                    "deleted": list(self._emulator.graph.deleted_events.values()),
                }
            )

    def _graph_meetings(self, request: Request, body: Any) -> Response:
        with self._emulator.lock:
            return json_response({"value": list(self._emulator.graph.online_meetings.values())})

    def _graph_cancellations(self, request: Request, body: Any) -> Response:
        with self._emulator.lock:
            return json_response({"value": list(self._emulator.graph.cancellations)})

    def _graph_report_add(self, request: Request, body: Any, meeting_id: str) -> Response:
        report = self._emulator.graph.add_attendance_report(
            meeting_id, start=body.get("start"), end=body.get("end"), records=body.get("records")
        )
        return json_response(report, status=201)

    def _graph_recording_add(self, request: Request, body: Any, meeting_id: str) -> Response:
        import base64
        import binascii

        try:
            content = base64.b64decode(body.get("content_base64") or "", validate=True)
        except (binascii.Error, TypeError):
            return json_response({"error": "content_base64 must be base64"}, status=400)
        if not content:
            return json_response({"error": "content_base64 is required"}, status=400)
        graph = self._emulator.graph
        recording = graph.add_recording(meeting_id, content, content_type=body.get("content_type") or "video/mp4",
                                        created=body.get("created"))
        transcript = None
        if body.get("transcript"):
            transcript = graph.add_transcript(meeting_id, str(body["transcript"]), created=body.get("created"),
                                              recording=recording)
        return json_response({"recording": recording, "transcript": transcript}, status=201)

    def _acs_emails(self, request: Request, body: Any) -> Response:
        with self._emulator.lock:
            emails = [dataclasses.asdict(e) for e in self._emulator.acs.sent_emails]
            operations = {k: dataclasses.asdict(v) for k, v in self._emulator.acs.email_operations.items()}
        return json_response({"value": emails, "operations": operations})

    def _acs_identities(self, request: Request, body: Any) -> Response:
        with self._emulator.lock:
            identities = [
                {"id": i.id, "deleted": i.deleted, "tokens_valid_from": i.tokens_valid_from, "tokens": len(i.tokens)}
                for i in self._emulator.acs.identities.values()
            ]
        return json_response({"value": identities})

    def _acs_sms(self, request: Request, body: Any) -> Response:
        with self._emulator.lock:
            return json_response({"value": [dataclasses.asdict(m) for m in self._emulator.acs.sms_messages]})

    def _acs_subscriptions(self, request: Request, body: Any) -> Response:
        with self._emulator.lock:
            subscriptions = [s.to_dict() for s in self._emulator.acs.event_subscriptions.values()]
        return json_response({"value": subscriptions})

    def _acs_subscribe(self, request: Request, body: Any) -> Response:
        from .acs import EventGridError

        try:
            subscription = self._emulator.acs.subscribe(
                body["endpoint"], headers=body.get("headers"), event_types=body.get("event_types"),
                verify=body.get("verify"),
            )
        except EventGridError as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response(subscription.to_dict(), status=201)

    def _acs_unsubscribe(self, request: Request, body: Any, subscription_id: str | None = None) -> Response:
        found = self._emulator.acs.unsubscribe(subscription_id)
        if subscription_id is not None and not found:
            return json_response({"error": "no such subscription"}, status=404)
        return json_response(None, status=204)

    def _acs_reports(self, request: Request, body: Any) -> Response:
        from .acs import _public

        with self._emulator.lock:
            pending = [_public(e) for e in self._emulator.acs.pending_reports]
            delivered = [_public(e) for e in self._emulator.acs.delivered_reports]
        return json_response({"pending": pending, "delivered": delivered})

    def _acs_deliver(self, request: Request, body: Any) -> Response:
        return json_response(self._emulator.acs.deliver_reports())


@functools.cache
def _url_map() -> Map:
    """The routing table, compiled once per process (werkzeug compiles each rule, ~0.1 s per map)."""
    return Map(
        [
            Rule("/_emulator/", endpoint="index", methods=["GET"]),
            Rule("/_emulator/requests", endpoint="requests", methods=["GET"]),
            Rule("/_emulator/reset", endpoint="reset", methods=["POST"]),
            Rule("/_emulator/faults", endpoint="faults_list", methods=["GET"]),
            Rule("/_emulator/faults", endpoint="faults_add", methods=["POST"]),
            Rule("/_emulator/faults", endpoint="faults_clear", methods=["DELETE"]),
            Rule("/_emulator/faults/<int:fault_id>", endpoint="fault_delete", methods=["DELETE"]),
            Rule("/_emulator/clock/advance", endpoint="clock_advance", methods=["POST"]),
            Rule("/_emulator/entra/expire-access-tokens", endpoint="expire", methods=["POST"]),
            Rule("/_emulator/entra/revoke-refresh-tokens", endpoint="revoke", methods=["POST"]),
            Rule("/_emulator/graph/events", endpoint="graph_events", methods=["GET"]),
            Rule("/_emulator/graph/online-meetings", endpoint="graph_meetings", methods=["GET"]),
            Rule("/_emulator/graph/cancellations", endpoint="graph_cancellations", methods=["GET"]),
            Rule(
                "/_emulator/graph/online-meetings/<meeting_id>/attendance-reports",
                endpoint="graph_report_add",
                methods=["POST"],
            ),
            Rule("/_emulator/graph/online-meetings/<meeting_id>/recordings", endpoint="graph_recording_add",
                 methods=["POST"]),
            Rule("/_emulator/acs/emails", endpoint="acs_emails", methods=["GET"]),
            Rule("/_emulator/acs/identities", endpoint="acs_identities", methods=["GET"]),
            Rule("/_emulator/acs/sms", endpoint="acs_sms", methods=["GET"]),
            Rule("/_emulator/acs/event-subscriptions", endpoint="acs_subscriptions", methods=["GET"]),
            Rule("/_emulator/acs/event-subscriptions", endpoint="acs_subscribe", methods=["POST"]),
            Rule("/_emulator/acs/event-subscriptions", endpoint="acs_unsubscribe", methods=["DELETE"]),
            Rule("/_emulator/acs/event-subscriptions/<subscription_id>", endpoint="acs_unsubscribe",
                 methods=["DELETE"]),
            Rule("/_emulator/acs/delivery-reports", endpoint="acs_reports", methods=["GET"]),
            Rule("/_emulator/acs/delivery-reports/deliver", endpoint="acs_deliver", methods=["POST"]),
        ],
        strict_slashes=False,
    )
