"""The job kinds Honk runs, registered with the worker, each authorised once, here.

Every kind starts the same way: the requester must have write access, checked against GitHub at run time
(the webhook route stays fast, and a permission revoked while the job waited is honoured). A request from
anyone else ends at once as "not authorised" and touches nothing. A new kind is one `register` line here and
a short file of steps (app/jobs/steps.py).

One exception: a red CI run on Honk's own pull request is nobody's request (GitHub Actions or Honk's own bot
sends it). Its authority is that Honk pushed the failing head, which the job checks before anything else
(app/jobs/fix_ci.py); a person's `@honk fix ci` is authorised like any other request. And news for a Slack
thread (app/jobs/notify.py) is no request at all: it changes nothing anywhere but that thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from githubkit.exception import GitHubException

from app.github.client import GitHubApp, GitHubNotConfigured, can_write
from app.github.pacing import RateLimitWaitTooLong
from app.jobs.campaign import campaign, campaign_sync
from app.jobs.campaign_target import campaign_target, campaign_target_refused
from app.jobs.control import control
from app.jobs.fix_ci import fix_ci
from app.jobs.follow_up import follow_up
from app.jobs.notify import notify
from app.jobs.recheck import recheck
from app.jobs.resolve_issue import resolve_issue
from app.jobs.slack import slack_request
from app.queue.context import Handler, Handlers, JobContext, JobFailed, JobPostponed
from app.queue.requests import JobKind

AuthorisedJob = Callable[[JobContext, GitHubApp], Awaitable[dict[str, Any]]]
Refused = Callable[[JobContext, dict[str, Any]], Awaitable[None]]


class NotAuthorised(Exception):
    def __init__(self, login: str, role: str) -> None:
        super().__init__(f"{login} has {role!r} access; only writers, maintainers and admins are obeyed")
        self.login = login
        self.role = role


async def authorise(ctx: JobContext) -> GitHubApp:
    """The App, once the job's requester is known to have write access; NotAuthorised otherwise."""
    job = ctx.job
    app = _app(ctx)
    if not job.requester or job.installation_id is None:
        raise NotAuthorised(job.requester or "nobody", "none")
    try:
        role = await app.permission(job.installation_id, job.repo, job.requester)
    except GitHubException as exc:
        # GitHub being down or rate-limiting is worth another attempt; the job keeps its place.
        raise JobFailed(f"cannot check {job.requester}'s permission on {job.repo}: {exc}", retry=True) from exc
    await ctx.audit.record("authorisation", requester=job.requester, role=role, allowed=can_write(role))
    if not can_write(role):
        raise NotAuthorised(job.requester, role)
    return app


def _app(ctx: JobContext) -> GitHubApp:
    try:
        return GitHubApp.for_settings(ctx.settings)
    except GitHubNotConfigured as exc:
        raise JobFailed(str(exc), retry=False) from None


def _from_ci(payload: dict[str, Any]) -> bool:
    return payload.get("type") == "ci"


def _by_operator(payload: dict[str, Any]) -> bool:
    """A campaign started with `honk campaign start` and no `--requester`: whoever ran it holds the App's key."""
    return payload.get("operator") is True


def authorised(job: AuthorisedJob, *, unless: Callable[[dict[str, Any]], bool] = lambda payload: False,
               refused: Refused | None = None) -> Callable[[JobContext], Awaitable[dict[str, Any]]]:
    """The handler the worker runs: authorise, then do the job; a refusal is the job's (successful) result, told
    to `refused` when the job keeps records of its own. `unless(payload)` names the requests that carry their own
    authority, checked by the job itself."""
    async def handler(ctx: JobContext) -> dict[str, Any]:
        try:
            app = _app(ctx) if unless(ctx.job.payload or {}) else await authorise(ctx)
        except NotAuthorised as exc:
            refusal = {"outcome": "not_authorised", "requester": exc.login, "role": exc.role, "detail": str(exc)}
            if refused is not None:
                await refused(ctx, refusal)
            return refusal
        return await job(ctx, app)
    handler.__name__ = handler.__qualname__ = job.__name__
    return patient(handler)


def patient(handler: Handler) -> Handler:
    """GitHub holding the installation's requests longer than a job waits within one attempt is nobody's failure:
    the job goes back to the queue until the hold ends ("retry at" in its record), the attempt not counted."""
    async def run(ctx: JobContext) -> dict[str, Any] | None:
        try:
            return await handler(ctx)
        except RateLimitWaitTooLong as exc:
            seconds = exc.retry_after.total_seconds() if exc.retry_after else 60.0
            raise JobPostponed(f"GitHub holds this installation's requests: {exc.message}", seconds) from None
    run.__name__ = run.__qualname__ = handler.__name__
    return run


handlers = Handlers()
handlers.register(JobKind.RESOLVE_ISSUE)(authorised(resolve_issue))
handlers.register(JobKind.FOLLOW_UP)(authorised(follow_up))
handlers.register(JobKind.CONTROL)(authorised(control))
handlers.register(JobKind.FIX_CI)(authorised(fix_ci, unless=_from_ci))
handlers.register(JobKind.RECHECK)(authorised(recheck))
# A Slack request names a Slack user, not a GitHub one: it authorises itself (link, login, write permission).
handlers.register(JobKind.SLACK)(slack_request)
# News for a Slack thread acts on nothing and only writes into a thread that follows that very pull request: it
# needs nobody's authority (GitHub Actions and other bots send most of it).
handlers.register(JobKind.NOTIFY)(notify)
# Fleet campaigns: the campaign issue's requests need a writer there; each repository's run needs the requester to
# write there too (checked at plan time and again at run time); the bookkeeping acts only within a campaign a
# writer started, on news GitHub sends about its own pull requests.
handlers.register(JobKind.CAMPAIGN)(authorised(campaign, unless=_by_operator))
handlers.register(JobKind.CAMPAIGN_TARGET)(authorised(campaign_target, unless=_by_operator,
                                                      refused=campaign_target_refused))
handlers.register(JobKind.CAMPAIGN_SYNC)(patient(campaign_sync))
