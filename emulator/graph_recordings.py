"""Graph v1.0 meeting recordings and transcripts (`callRecording`, `callTranscript`) for GraphService.

As Microsoft documents them (onlinemeeting-list-recordings, callrecording-get, onlinemeeting-list-transcripts,
calltranscript-get): delegated only for the meeting's organizer (someone else's meeting is 404, as for
attendance), `OnlineMeetingRecording.Read.All` / `OnlineMeetingTranscript.Read.All` or 403, resources
with exactly the properties of the v1.0 facts (the `content` stream is never inlined), `/content`
answering the bytes with their Content-Type, and a transcript's content as WebVTT (`$format=text/vtt`, the
default; other formats are refused).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from ._util import new_guid
from .graph_facts import check_object
from .graph_model import GraphError, as_utc_string

if TYPE_CHECKING:
    from .graph import _Call

SCOPES_RECORDING = ("OnlineMeetingRecording.Read.All",)
SCOPES_TRANSCRIPT = ("OnlineMeetingTranscript.Read.All",)

#: (url segment, facts type, content-url property, scopes, what a 403 says)
_KINDS = {
    "recordings": ("callRecording", "recordingContentUrl", SCOPES_RECORDING, "recordings"),
    "transcripts": ("callTranscript", "transcriptContentUrl", SCOPES_TRANSCRIPT, "transcripts"),
}

RULES = [
    ("/me/onlineMeetings/<meeting_id>/<any(recordings, transcripts):kind>", "artifacts", ["GET"]),
    ("/me/onlineMeetings/<meeting_id>/<any(recordings, transcripts):kind>/<artifact_id>", "artifact", ["GET"]),
    ("/me/onlineMeetings/<meeting_id>/<any(recordings, transcripts):kind>/<artifact_id>/content",
     "artifact_content", ["GET"]),
]


class RecordingsMixin:
    """Recordings and transcripts of the emulated meetings (state: `recordings`, `transcripts`)."""

    def _reset_recordings(self) -> None:
        #: meeting id -> callRecording resources, each with its "_content" bytes and "_contentType"
        self.recordings: dict[str, list[dict[str, Any]]] = {}
        #: meeting id -> callTranscript resources, each with its "_content" (WebVTT bytes)
        self.transcripts: dict[str, list[dict[str, Any]]] = {}

    # --- Python control API ---

    def add_recording(self, meeting_id: str, content: bytes, *, content_type: str = "video/mp4",
                      created: datetime | str | None = None, ended: datetime | str | None = None) -> dict[str, Any]:
        """Seed a recording of a meeting (what Teams stores once a recorded meeting ends)."""
        return self._add_artifact("recordings", meeting_id, content, content_type, created, ended)

    def add_transcript(self, meeting_id: str, vtt: str, *, created: datetime | str | None = None,
                       ended: datetime | str | None = None, recording: dict[str, Any] | None = None) -> dict[str, Any]:
        """Seed a transcript (WebVTT with `<v Speaker>` voice tags, as Teams writes them); given the
        `recording` of the same call, it shares that call's callId and contentCorrelationId.
        """
        return self._add_artifact("transcripts", meeting_id, vtt.encode(), "text/vtt", created, ended,
                                  same_call=recording)

    def _add_artifact(self, kind: str, meeting_id: str, content: bytes, content_type: str, created, ended,
                      same_call: dict[str, Any] | None = None):
        with self._emulator.lock:
            meeting = self.online_meetings.get(meeting_id)
            if meeting is None:
                raise KeyError(meeting_id)
            organizer = meeting["participants"]["organizer"]["identity"]["user"]
            resource = {
                "id": new_guid(),
                "meetingId": meeting_id,
                "callId": same_call["callId"] if same_call else new_guid(),
                "contentCorrelationId": same_call["contentCorrelationId"] if same_call else new_guid(),
                "createdDateTime": as_utc_string(created or meeting["endDateTime"]),
                "endDateTime": as_utc_string(ended or created or meeting["endDateTime"]),
                # identitySet / identity as the v1.0 facts define them (id and displayName only).
                "meetingOrganizer": {"user": {"id": organizer["id"], "displayName": None}},
                "_content": bytes(content),
                "_contentType": content_type,
            }
            getattr(self, kind).setdefault(meeting_id, []).append(resource)
            return {k: v for k, v in resource.items() if not k.startswith("_")}

    # --- HTTP ---

    def _artifact_view(self, call: _Call, kind: str, meeting_id: str, item: dict[str, Any]) -> dict[str, Any]:
        type_name, url_property, _, _ = _KINDS[kind]
        view = {k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("_")}
        view[url_property] = (f"{call.ctx.base_url}/{call.version}/users/{call.user.oid}/onlineMeetings/"
                              f"{meeting_id}/{kind}/{item['id']}/content")
        check_object(type_name, view, include_unknown=False)  # nothing the published type does not have
        return view

    def _artifacts_of(self, call: _Call, kind: str, meeting_id: str) -> list[dict[str, Any]]:
        _, _, scopes, noun = _KINDS[kind]
        self._require(call, scopes, "Forbidden", f"Application does not have permission to read meeting {noun}.")
        self._owned_meeting(call, meeting_id)
        return getattr(self, kind).get(meeting_id, [])

    def _one(self, call: _Call, kind: str, meeting_id: str, artifact_id: str) -> dict[str, Any]:
        for item in self._artifacts_of(call, kind, meeting_id):
            if item["id"] == artifact_id:
                return item
        raise GraphError(404, "NotFound", f"The requested {kind[:-1]} was not found.")

    def _artifacts_get(self, call: _Call, meeting_id: str, kind: str) -> Response:
        with self._emulator.lock:
            items = [self._artifact_view(call, kind, meeting_id, i) for i in self._artifacts_of(call, kind, meeting_id)]
        context = f"users('{call.user.oid}')/onlineMeetings('{meeting_id}')/{kind}"
        return self._ok(call, self._page(call, items, context, paging="skiptoken"))

    def _artifact_get(self, call: _Call, meeting_id: str, kind: str, artifact_id: str) -> Response:
        with self._emulator.lock:
            view = self._artifact_view(call, kind, meeting_id, self._one(call, kind, meeting_id, artifact_id))
        context = (f"{call.ctx.base_url}/{call.version}/$metadata#users('{call.user.oid}')/onlineMeetings"
                   f"('{meeting_id}')/{kind}/$entity")
        return self._ok(call, {"@odata.context": context, **view})

    def _artifact_content_get(self, call: _Call, meeting_id: str, kind: str, artifact_id: str) -> Response:
        wanted = call.request.args.get("$format")
        if kind == "transcripts" and wanted not in (None, "text/vtt"):
            raise GraphError(400, "BadRequest", f"The format '{wanted}' is not supported; use text/vtt.")
        if kind == "recordings" and wanted is not None:
            raise GraphError(400, "BadRequest", "The query option '$format' is not supported for recordings.")
        with self._emulator.lock:
            item = self._one(call, kind, meeting_id, artifact_id)
            content, content_type = item["_content"], item["_contentType"]
        return Response(content, status=200, content_type=content_type)
