"""The fake's routes, one `fastapi.APIRouter` (`router`) per area of GitHub's API; `app.build_app` includes
them in order. Each route takes the fake as a `GitHub` dependency (see `api.py`) and names itself to `gate`
(or `repository`) with the route name tests use in `delays`, `failures` and `calls`."""
