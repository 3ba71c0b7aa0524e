"""`honk campaign start --repo-of-issue OWNER/NAME --file SPEC.md`: a fleet campaign from the command line.

The file is a campaign issue's body (the task, and its ```` ```yaml honk-campaign ```` block). It is checked here
first, so a mistake is told at once and nothing is created; then Honk's App opens the campaign issue in OWNER/NAME
(labelled `HONK_CAMPAIGN_LABEL`, so that `@honk rollout` and the other commands work there) and queues the
campaign's start, which a running `honk serve` or `honk worker` picks up: the plan and the status table appear
in the issue, the figures at /campaigns.

With `--requester LOGIN` the campaign is that person's: their write access is checked on every repository, as for
a label. Without it the campaign is the operator's (whoever can run this command holds the App's key): Honk's
own write access is the only check.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path
from typing import Any

from app.github.client import GitHubApp, GitHubNotConfigured
from app.jobs.campaign_spec import CampaignSpecError, parse_campaign
from app.process import HonkState
from app.queue.requests import JobKind, JobRequest
from app.settings import Settings

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def add_parser(commands: Any) -> None:
    campaign = commands.add_parser("campaign", help="start a fleet campaign: one change, a pull request per repository")
    actions = campaign.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="open the campaign issue and start the campaign")
    start.add_argument("--repo-of-issue", required=True, metavar="OWNER/NAME",
                       help="the repository where the campaign issue is opened")
    start.add_argument("--file", required=True, type=Path, metavar="SPEC.md",
                       help="the issue's body: the task and its ```yaml honk-campaign``` block")
    start.add_argument("--title", default=None, help="the issue's title (default: the file's first heading or line)")
    start.add_argument("--requester", default=None, metavar="LOGIN",
                       help="the person whose campaign it is (their write access is checked on every repository)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    repo = args.repo_of_issue.strip()
    if not _REPO.fullmatch(repo):
        return _fail(f"--repo-of-issue must be OWNER/NAME, not {repo!r}")
    try:
        body = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read {args.file}: {exc}")
    try:
        request = parse_campaign(body)
    except CampaignSpecError as exc:
        return _fail(f"{args.file}: {exc}\nNothing was created.")
    title = (args.title or _title_of(request.task)).strip()
    try:
        app = GitHubApp.for_settings(settings)
    except GitHubNotConfigured as exc:
        return _fail(str(exc))
    opened = asyncio.run(_open_issue(app, settings, repo, title, body))
    if isinstance(opened, str):
        return _fail(opened)
    installation, issue, bot = opened
    state = HonkState.create(settings)
    state.db.migrate()
    job_id = state.queue.enqueue(JobRequest(
        kind=JobKind.CAMPAIGN, repo=repo, number=issue["number"], requester=args.requester or bot,
        installation_id=installation,
        trigger={"type": "campaign_cli", "operator": args.requester is None,
                 "issue": {"number": issue["number"], "title": issue.get("title"), "html_url": issue.get("html_url")}}))
    state.db.dispose()
    print(f"Opened {repo}#{issue['number']}: {issue.get('html_url')}")
    print(f"Queued job #{job_id}: a running `honk serve` or `honk worker` starts the campaign; its plan and status "
          "table appear in the issue" + (f", its figures at {settings.honk_public_url}/campaigns."
                                         if settings.honk_public_url else ", its figures at /campaigns."))
    return 0


async def _open_issue(app: GitHubApp, settings: Settings, repo: str, title: str, body: str
                      ) -> tuple[int, dict[str, Any], str] | str:
    installation = await app.installation_of(repo)
    if installation is None:
        return f"Honk's App is not installed on {repo} (or there is no such repository): install it there first"
    identity = await app.identity(installation)
    async with await app.repo(installation, repo) as gh:
        issue = await gh.create_issue(title, body, labels=[settings.honk_campaign_label])
    return installation, issue, identity.bot_login


def _title_of(task: str) -> str:
    for line in task.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()[:200] or "Fleet campaign"
    return "Fleet campaign"


def _fail(message: str) -> int:
    import sys

    print(f"honk campaign: {message}", file=sys.stderr)
    return 2
