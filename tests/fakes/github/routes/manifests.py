"""Registering a GitHub App from a manifest: the web form GitHub confirms (here at once, redirecting with a
code) and `POST /app-manifests/{code}/conversions`, which turns the code into this fake's App with new
secrets and aims the fake's webhook deliveries at the manifest's hook URL."""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tests.fakes.github.api import GitHub, base, gate
from tests.fakes.github.errors import not_found

router = APIRouter()


@router.post("/settings/apps/new")
@router.post("/organizations/{org}/settings/apps/new")
async def new_app_from_manifest(request: Request, gh: GitHub, org: str | None = None) -> Response:
    """GitHub's web page for a manifest form. There the user confirms and GitHub redirects to the
    manifest's `redirect_url` with a one-hour code and the form's `state`; the fake confirms at once."""
    await gate(gh, request, "new_app_from_manifest")
    form = parse_qs((await request.body()).decode(errors="replace"))
    try:
        manifest = json.loads(form["manifest"][0])
        redirect = manifest["redirect_url"]
    except (KeyError, IndexError, ValueError, TypeError):
        return Response("Invalid GitHub App configuration: a manifest with a redirect_url is required",
                        status_code=422, media_type="text/plain")
    code = secrets.token_hex(10)
    with gh._lock:
        gh.manifest_codes[code] = {**manifest, "_organization": org}
    query = urlencode({"code": code, **({"state": request.query_params["state"]}
                                        if "state" in request.query_params else {})})
    joiner = "&" if "?" in redirect else "?"
    return Response(status_code=302, headers={"location": f"{redirect}{joiner}{query}"})


@router.post("/app-manifests/{code}/conversions", status_code=201)
async def manifest_conversion(code: str, request: Request, gh: GitHub) -> dict[str, Any]:
    """Needs no credentials: the single-use code is one. The App made is this fake's own (its id, key
    and slug), so Honk can act as it afterwards; the secrets are new."""
    await gate(gh, request, "manifest_conversion")
    with gh._lock:
        manifest = gh.manifest_codes.pop(code, None)
    if manifest is None:
        raise not_found()
    b = base(request)
    hook = manifest.get("hook_attributes") or {}
    answer = {**gh._app_json(b), "name": manifest.get("name") or "Honk (test)",
              "description": manifest.get("description") or "", "external_url": manifest.get("url"),
              "permissions": manifest.get("default_permissions") or {},
              "events": manifest.get("default_events") or [],
              "client_secret": secrets.token_hex(20), "webhook_secret": secrets.token_hex(20),
              "pem": gh.private_key_pem}
    with gh._lock:
        gh.registered_apps.append(answer)
    if hook.get("url"):
        gh.webhook_target(hook["url"], answer["webhook_secret"])
    return answer
