"""Git's smart HTTP as GitHub serves it: fetch (`info/refs`, `git-upload-pack`) and push
(`git-receive-pack`), with Basic auth `x-access-token:<installation token>`, answered by `git http-backend`
(see `tests.fakes.github.git`). Failures are git's plain text, not JSON, and carry no rate-limit headers. An
archived repository can be fetched but not pushed to (403, with GitHub's words, at the push's first request)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tests.fakes.github.api import GitHub, gate
from tests.fakes.github.auth import git_installation
from tests.fakes.github.fake import FakeGitHub

router = APIRouter()


@router.get("/{owner}/{name}.git/info/refs")
async def git_info_refs(owner: str, name: str, request: Request, gh: GitHub) -> Response:
    return await _git_http(gh, request, "git_info_refs", owner, name, "info/refs")


@router.post("/{owner}/{name}.git/git-upload-pack")
async def git_upload_pack(owner: str, name: str, request: Request, gh: GitHub) -> Response:
    return await _git_http(gh, request, "git_upload_pack", owner, name, "git-upload-pack")


@router.post("/{owner}/{name}.git/git-receive-pack")
async def git_receive_pack(owner: str, name: str, request: Request, gh: GitHub) -> Response:
    return await _git_http(gh, request, "git_receive_pack", owner, name, "git-receive-pack")


async def _git_http(gh: FakeGitHub, request: Request, route: str, owner: str, name: str,
                    path_info: str) -> Response:
    await gate(gh, request, route)
    installation = git_installation(gh, request)
    if installation is None:
        return Response(b"Invalid username or token. Password authentication is not supported for Git "
                        b"operations.\n", status_code=401,
                        headers={"WWW-Authenticate": 'Basic realm="GitHub"'}, media_type="text/plain")
    repo = gh._repos.get(f"{owner}/{name}".lower())
    if repo is None or repo.installation_id != installation:
        return Response(b"Repository not found.\n", status_code=404, media_type="text/plain")
    pushing = path_info == "git-receive-pack" or request.query_params.get("service") == "git-receive-pack"
    if pushing and repo.archived:
        return Response(b"This repository was archived so it is read-only.\n", status_code=403,
                        media_type="text/plain")
    return await gh._http_backend(request, repo, path_info)
