"""``POST /api/usage/`` (interfaces.md, "Usage records"): usage records
from the sending platform, authenticated by an ingest token.

Request: ``Authorization: Bearer <token>``, ``Idempotency-Key: <key>`` and
a JSON body ``{"records": [ … ]}`` of 1 to 10,000 records, each an object
with the CSV's keys. Answers:

- 201 ``{"import", "records", "daily_rows", "late_rows", "late_periods"}``;
  a replay of the key with the same records answers the same, with the
  header ``Idempotent-Replayed: true``, and stores nothing more;
- 400 bad JSON, JSON nested deeper than 32 levels, missing key or bad
  records (nothing stored), a record for an account the token does not
  write among them;
- 401 missing, unknown or revoked token; 405 not POST;
- 413 body over ``MAX_BODY_BYTES`` or more than ``MAX_RECORDS`` records
  (reading stops at the first record over);
- 422 the key was used before by the same token with different records.

Idempotency-Keys are the token's own: another token's key is another key.

Every error has the one shape
``{"error": {"code": "…", "message": "…", "details": [{"index": 0, "reason": "…"}]}}``
(``details`` only for ``invalid_records``).
"""
from __future__ import annotations

import re

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from .ingest import ImportRejected
from .ingest.sources import MAX_JSON_DEPTH, JsonTooDeep, TooManyRecords, body_records
from .selectors import ingest_token_find
from .services import IdempotencyKeyReused, usage_ingest_request

MAX_RECORDS = 10_000
# 10,000 records of about 120 bytes take 1.2 MB; room for verbose JSON.
MAX_BODY_BYTES = 8 * 1024 * 1024
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces


def api_error(status: int, code: str, message: str, details: list | None = None, **headers) -> JsonResponse:
    error: dict = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    response = JsonResponse({"error": error}, status=status, json_dumps_params={"ensure_ascii": False})
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _bearer(request) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


@csrf_exempt
def usage_ingest(request):
    if request.method != "POST":
        return api_error(405, "method_not_allowed", "Use POST.", Allow="POST")
    token = ingest_token_find(raw=_bearer(request))
    if token is None:
        return api_error(401, "unauthorized", "A valid ingest token is required: Authorization: Bearer <token>.",
                         WWW_Authenticate='Bearer realm="usage"')
    too_large = api_error(413, "body_too_large", f"The body exceeds {MAX_BODY_BYTES:,} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        return too_large
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return too_large
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        return api_error(400, "idempotency_key_required", "The Idempotency-Key header is required.")
    if not _KEY.match(key):
        return api_error(400, "invalid_idempotency_key",
                         "The Idempotency-Key must be 1 to 200 printable ASCII characters without spaces.")
    try:
        records = body_records(body, limit=MAX_RECORDS)
    except TooManyRecords:
        return api_error(413, "too_many_records",
                         f"More than {MAX_RECORDS:,} records; at most {MAX_RECORDS:,} per request.")
    except JsonTooDeep:
        return api_error(400, "too_deep", f"The body nests JSON deeper than {MAX_JSON_DEPTH} levels.")
    except ValueError as exc:  # UnicodeDecodeError included
        return api_error(400, "invalid_json", f"The body is not valid JSON: {exc}")
    if not isinstance(records, list) or not records:
        return api_error(400, "invalid_body", 'The body must be {"records": [ … ]} with at least one record.')
    try:
        answer = usage_ingest_request(token=token, idempotency_key=key, records=records, now=timezone.now())
    except ImportRejected as exc:
        details = [{"index": e.position, "reason": e.reason} for e in exc.errors if e.position is not None]
        if not details:  # a problem of the request as a whole
            return api_error(400, "invalid_records", f"{exc.errors[0].reason}; nothing was stored.")
        return api_error(400, "invalid_records", f"{exc.summary()}.", details)
    except IdempotencyKeyReused as exc:
        return api_error(422, "idempotency_key_reused", f"{exc}.")
    response = HttpResponse(answer.body, status=answer.status, content_type="application/json")
    if answer.replayed:
        response["Idempotent-Replayed"] = "true"
    return response
