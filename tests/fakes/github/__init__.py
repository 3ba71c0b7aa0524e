"""A local GitHub for tests: the REST, GraphQL and git endpoints Honk uses, with GitHub's shapes and auth.

It checks what real GitHub checks: `/app/...` routes need an App JWT signed with the App's key, repository
routes need an unexpired installation token it issued, and git over HTTP (served by the real
`git http-backend`) needs Basic auth as `x-access-token:<token>`. Tests script it through plain attributes:
`permissions` (login -> role), `repo_permissions` (repository -> login -> role, which comes first for its
repository; or `set_permission(repo, login, role)`), `delays` (route name -> seconds), `failures` (route name ->
statuses to answer next, or `PRIMARY_RATE_LIMIT`), and read `requests`, `pushes` and `deliveries` afterwards.
Repositories, issues, comments and reviews are created with methods (`create_repo`, `create_issue`, `add_review`,
...), and webhooks go out with `deliver` to the target set by `webhook_target`. GitHub's App manifest flow works
too: a form posted to `/settings/apps/new` (or an organization's) redirects at once to the manifest's
`redirect_url` with a code (`manifest_codes`, which tests may also fill directly), and
`POST /app-manifests/{code}/conversions` turns it into this fake's App, new secrets included (`registered_apps`),
aiming `deliver` at its webhook URL.

Fleets: `create_fleet(count, owner=, prefix=, files=, every=, installation_id=)` makes many repositories of one
installation at once (200 in well under a second), `every(index)` varying files, `topics`, `language` or
`archived`; `GET /installation/repositories` lists an installation's repositories (paginated, `Link` header),
and `GET /repos/{o}/{r}/git/trees/{sha or ref}` (`recursive`) their trees. `create_repo` takes `topics`,
`language` and `archived` too, and `archive_repo` archives one later: like GitHub, an archived repository answers
REST writes with 403 "Repository was archived so is read-only." and refuses pushes. Pull requests end with
`merge_pull` (a real merge, as a person) or the `pull_request_closed` payload (closing or merging as `sender`).

Rate limits: every API answer carries GitHub's `x-ratelimit-*` headers, and a test may make the fake enforce
limits as GitHub does (`enforce_rate_limit` with a short `rate_window`, `secondary_share`, `content_interval`; see
`ratelimit`); `metered`, `content_requests(installation)` and `rate_limited()` show what they met.

Serve it with `tests.support.live_server(fake.app)` (or `fake.serve()`, which also sets `base_url`).

The modules: `fake` (`FakeGitHub`, made of the layers `state`, `git`, `records`, `shapes`, `checks` and
`webhooks`), `app` (the FastAPI app), `api` (what routes share), `auth`, `errors`, `ratelimit`, and `routes/`,
one router per area of GitHub's API (`apps`, `users`, `repos`, `issues`, `pulls`, `reviews`, `checks`, `graphql`,
`git`, `manifests`). Checks and Actions: `add_check_suite`, `add_workflow_run`, `check_runs`, and the payloads
`check_suite_completed`, `check_run_rerequested`, `workflow_run_completed`.
"""

from tests.fakes.github.auth import basic_auth_header
from tests.fakes.github.errors import PRIMARY_RATE_LIMIT
from tests.fakes.github.fake import FakeGitHub
from tests.fakes.github.git import OCTOCAT
from tests.fakes.github.state import Delivery, Metered, Push, Recorded

__all__ = ["OCTOCAT", "PRIMARY_RATE_LIMIT", "Delivery", "FakeGitHub", "Metered", "Push", "Recorded",
           "basic_auth_header"]
