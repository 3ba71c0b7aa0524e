"""GitHub's Repositories API, with an installation token: a collaborator's permission, the repository,
its contents, a branch, a git ref, and a git tree (`get_tree`, of a branch, commit or tree, `recursive` or not)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request

from tests.fakes.github.api import GitHub, base, gate, repository
from tests.fakes.github.auth import installation_token
from tests.fakes.github.errors import error, not_found
from tests.fakes.github.state import node_id

# GitHub's legacy `permission` field for each role.
_LEGACY = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}

router = APIRouter()


@router.get("/repos/{owner}/{repo}/collaborators/{username}/permission")
async def permission(owner: str, repo: str, username: str, request: Request, gh: GitHub) -> dict[str, Any]:
    """Answers from `repo_permissions` for this repository first, then from `permissions` (login -> role, for any
    repository); a role of `none` is GitHub's answer for a user without access."""
    await gate(gh, request, "permission")
    installation_token(gh, request)
    role = gh.role_of(f"{owner}/{repo}", username)
    if role is None:
        raise error(404, f"{username} is not a user")
    user = gh._user(base(request), username)
    return {"permission": _LEGACY.get(role, "none"), "role_name": role,
            "user": {**user, "permissions": {"admin": role == "admin",
                                             "maintain": role in ("admin", "maintain"),
                                             "push": role in ("admin", "maintain", "write"),
                                             "triage": role in ("admin", "maintain", "write", "triage"),
                                             "pull": role != "none"},
                     "role_name": role}}


@router.get("/repos/{owner}/{name}")
async def get_repo(owner: str, name: str, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "get_repo", owner, name)
    with gh._lock:
        return gh._repo_json(b, repo)


@router.get("/repos/{owner}/{name}/contents/{path:path}")
async def get_content(owner: str, name: str, path: str, request: Request, gh: GitHub) -> Any:
    repo, b = await repository(gh, request, "get_content", owner, name)
    ref = request.query_params.get("ref") or repo.default_branch
    path = path.strip("/")
    if gh._rev(repo, ref) is None:
        raise error(404, f"No commit found for the ref {ref}")
    spec = f"{ref}:{path}"
    kind = gh._git(repo, "cat-file", "-t", spec, check=False).stdout.decode().strip()
    if kind == "blob":
        sha = gh._out(repo, "rev-parse", spec)
        content = gh._git(repo, "cat-file", "blob", sha).stdout
        return gh._content_json(b, repo, ref, ("100644", "blob", sha, path), content)
    if kind == "tree":
        listing = gh._out(repo, "ls-tree", spec)
        entries = [line.split(None, 3) for line in listing.splitlines()]
        return [gh._content_json(b, repo, ref, (m, k, s, f"{path}/{p}".lstrip("/")), None)
                for m, k, s, p in entries]
    raise not_found()


@router.get("/repos/{owner}/{name}/branches/{branch:path}")
async def get_branch(owner: str, name: str, branch: str, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "get_branch", owner, name)
    sha = gh._branch_sha(repo, branch)
    if sha is None:
        raise error(404, "Branch not found")
    api = f"{b}/repos/{repo.full_name}"
    return {"name": branch, "commit": gh._commit_json(b, repo, sha),
            "_links": {"self": f"{api}/branches/{quote(branch)}",
                       "html": f"{b}/{repo.full_name}/tree/{branch}"},
            "protected": False, "protection": {"enabled": False, "required_status_checks": {
                "enforcement_level": "off", "contexts": [], "checks": []}},
            "protection_url": f"{api}/branches/{quote(branch)}/protection"}


@router.get("/repos/{owner}/{name}/git/ref/{ref:path}")
async def get_ref(owner: str, name: str, ref: str, request: Request, gh: GitHub) -> dict[str, Any]:
    repo, b = await repository(gh, request, "get_ref", owner, name)
    proc = gh._git(repo, "rev-parse", "--verify", "--quiet", f"refs/{ref}", check=False)
    sha = proc.stdout.decode().strip()
    if not sha:
        raise not_found()
    api = f"{b}/repos/{repo.full_name}"
    return {"ref": f"refs/{ref}", "node_id": node_id("Ref", int(sha[:7], 16)),
            "url": f"{api}/git/refs/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"}}


@router.get("/repos/{owner}/{name}/git/trees/{tree_sha:path}")
async def get_tree(owner: str, name: str, tree_sha: str, request: Request, gh: GitHub) -> dict[str, Any]:
    """A tree by its SHA, or that of a commit or a ref (a branch or tag name); with `recursive` (GitHub takes any
    value, even `0` or `false`, as yes) every entry below it, subtrees included, each under its full path."""
    repo, b = await repository(gh, request, "get_tree", owner, name)
    if not tree_sha or tree_sha.startswith("-"):
        raise not_found()
    proc = gh._git(repo, "rev-parse", "--verify", "--quiet", f"{tree_sha}^{{tree}}", check=False)
    sha = proc.stdout.decode().strip()
    if proc.returncode != 0 or not sha:
        raise not_found()
    recursive = "recursive" in request.query_params
    listing = gh._git(repo, "ls-tree", "-z", "--long", *(["-r", "-t"] if recursive else []), sha).stdout.decode()
    api = f"{b}/repos/{repo.full_name}"
    tree = []
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, kind, object_sha, size = meta.split()
        item: dict[str, Any] = {"path": path, "mode": mode, "type": kind, "sha": object_sha}
        if kind == "blob":
            item["size"] = int(size)
            item["url"] = f"{api}/git/blobs/{object_sha}"
        elif kind == "tree":
            item["url"] = f"{api}/git/trees/{object_sha}"
        tree.append(item)
    return {"sha": sha, "url": f"{api}/git/trees/{sha}", "tree": tree, "truncated": False}
