"""The operator's spending policy (CONTRACT section 9): the YAML file named by HONK_POLICY_FILE.

It sets monthly caps in US dollars per GitHub App installation, organization, repository and requester, the
models jobs may use, and the default budget of a campaign. Only the operator's process reads it; no repository
can change it (`.github/honk.yml` chooses a model, and the policy decides whether that model is allowed).

    caps:
      installation: {"12345": 500}        # by installation id
      organization: {acme: 2000}          # the repository's owner, an organization or a user
      repository: {acme/widgets: 100}
      requester: {alice: 50}              # who asked (a GitHub login)
      default: {repository: 200, requester: 100}   # for every one not named above
    allowed_models: [claude-opus-5-5, claude-sonnet-4-5]   # left out: any model; `*` patterns match
    campaign_budget_usd: 300
    reserve_per_call_usd: 0.5             # held for a model call until its real cost is known

A named entry wins over `default`; `null` names one that has no cap even though a default exists. Names compare
case-insensitively, as GitHub's do. A month is a calendar month in UTC: every cap resets on the first of the
month at 00:00 UTC.

This is a base module: it knows nothing of the database or the jobs. `app.queue.spending` keeps the ledger,
`app.jobs.spending` applies the policy to a job.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_POLICY_BYTES = 1024 * 1024
DEFAULT_RESERVE_USD = 0.5

ScopeKind = Literal["installation", "organization", "repository", "requester"]
SCOPE_KINDS: tuple[ScopeKind, ...] = ("installation", "organization", "repository", "requester")


class PolicyError(ValueError):
    """The policy file is missing or unusable; the message names the file, the key and the line."""


# What the file says

def _model_name(value: str) -> str:
    value = value.strip()
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be a model name without spaces, such as `claude-sonnet-4-5` (or a pattern with `*`)")
    return value


Usd = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]
ModelName = Annotated[str, AfterValidator(_model_name)]


class DefaultCaps(BaseModel):
    """The cap of every installation, organization, repository or requester the file does not name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    installation: Usd | None = None
    organization: Usd | None = None
    repository: Usd | None = None
    requester: Usd | None = None


class Caps(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    installation: dict[str, Usd | None] = Field(default_factory=dict)
    organization: dict[str, Usd | None] = Field(default_factory=dict)
    repository: dict[str, Usd | None] = Field(default_factory=dict)
    requester: dict[str, Usd | None] = Field(default_factory=dict)
    default: DefaultCaps = Field(default_factory=DefaultCaps)

    @field_validator("installation", "organization", "repository", "requester", mode="before")
    @classmethod
    def _keys_as_text(cls, value: object) -> object:
        # YAML reads `12345: 500` with an integer key; an installation id is what the file shows.
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v for k, v in value.items()}
        return value

    @field_validator("installation")
    @classmethod
    def _installation_ids(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        for key in value:
            if not key.isascii() or not key.isdigit():
                raise ValueError(f"names installations by their numeric id, not {key!r}")
        return value

    @field_validator("repository")
    @classmethod
    def _owner_slash_name(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        for key in value:
            owner, slash, name = key.partition("/")
            if not (owner and slash and name) or "/" in name:
                raise ValueError(f"names repositories as owner/name, not {key!r}")
        return value

    @field_validator("organization", "requester")
    @classmethod
    def _names(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        for key in value:
            if not key.strip() or "/" in key:
                raise ValueError(f"names accounts by their GitHub login, not {key!r}")
        return value

    def of(self, scope: Scope) -> float | None:
        """The cap that applies to `scope`: its own entry (even `null`), else the default for its kind."""
        named: dict[str, float | None] = getattr(self, scope.kind)
        for key, cap in named.items():
            if key.lower() == scope.key.lower():
                return cap
        return getattr(self.default, scope.kind)

    @property
    def count(self) -> int:
        named = sum(1 for kind in SCOPE_KINDS for cap in getattr(self, kind).values() if cap is not None)
        return named + sum(1 for kind in SCOPE_KINDS if getattr(self.default, kind) is not None)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    caps: Caps = Field(default_factory=Caps)
    allowed_models: list[ModelName] | None = None  # None: any model
    campaign_budget_usd: Usd | None = None  # the budget of a campaign whose block sets no `budget_usd`
    reserve_per_call_usd: float = Field(DEFAULT_RESERVE_USD, gt=0, strict=True, allow_inf_nan=False)

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("allowed_models")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("lists no model, so no job could run; leave it out to allow any model")
        return value

    def model_allowed(self, model: str) -> bool:
        if self.allowed_models is None:
            return True
        return any(fnmatch.fnmatchcase(model.lower(), allowed.lower()) for allowed in self.allowed_models)

    def caps_for(self, scopes: list[Scope]) -> dict[Scope, float]:
        """The scopes among these that have a cap, with it."""
        return {scope: cap for scope in scopes if (cap := self.caps.of(scope)) is not None}

    def describe(self) -> str:
        """One line for `honk doctor` and the spend page."""
        models = "any model" if self.allowed_models is None else "models " + ", ".join(self.allowed_models)
        campaign = (f"; campaign budget {usd(self.campaign_budget_usd)}" if self.campaign_budget_usd is not None
                    else "")
        return f"{_plural(self.caps.count, 'monthly cap')}; {models}{campaign}"


# Who spends, and what a reached cap is called

@dataclass(frozen=True, order=True)
class Scope:
    """One thing a cap applies to: kind and key (an installation id, a login, owner/name)."""

    kind: ScopeKind
    key: str

    @property
    def words(self) -> str:
        return {"installation": f"the installation {self.key}", "organization": f"the organization {self.key}",
                "repository": f"the repository {self.key}", "requester": f"@{self.key}"}[self.kind]

    @property
    def possessive(self) -> str:
        return "their" if self.kind == "requester" else "its"


def scopes_of(*, installation_id: int | None, repository: str, requester: str | None) -> list[Scope]:
    """The scopes a job's spending counts against, in the order caps are checked."""
    organization = repository.split("/", 1)[0]
    scopes = [Scope("organization", organization), Scope("repository", repository)]
    if installation_id is not None:
        scopes.insert(0, Scope("installation", str(installation_id)))
    if requester:
        scopes.append(Scope("requester", requester))
    return scopes


def cap_words(scope: Scope, *, spent: float, cap: float, month: str, pending: float = 0.0) -> str:
    """A reached cap in words for a status comment: who, how much of which cap, and when it resets."""
    text = f"{scope.words} has spent {usd(spent, cents=True)} of {scope.possessive} {usd(cap)} monthly cap"
    if spent < cap and pending > 0:
        text += f", and model calls under way are expected to use the remaining {usd(cap - spent, cents=True)}"
    return f"{text}; it resets on {resets_on(month).isoformat()} (UTC)"


def usd(value: float, *, cents: bool = False) -> str:
    if not cents and value == int(value):
        return f"${int(value):,}"
    if 0 < abs(value) < 0.01:
        return f"${value:.4f}".rstrip("0")  # a fraction of a cent is not "$0.00"
    return f"${value:,.2f}"


# Months (UTC)

def month_of(at: datetime | date) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def parse_month(text: str) -> str:
    """`YYYY-MM`, checked; ValueError otherwise."""
    try:
        parsed = datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        parsed = None
    if parsed is None or not 1970 <= parsed.year < 9999:
        raise ValueError(f"{text[:40]!r} is not a month written YYYY-MM, such as 2026-05")
    return month_of(parsed)


def resets_on(month: str) -> date:
    """The day a month's caps reset: the first of the next month (at 00:00 UTC)."""
    year, number = (int(part) for part in parse_month(month).split("-"))
    return date(year + number // 12, number % 12 + 1, 1)


def days_of(month: str) -> list[date]:
    year, number = (int(part) for part in parse_month(month).split("-"))
    first, end = date(year, number, 1), resets_on(month)
    return [date.fromordinal(n) for n in range(first.toordinal(), end.toordinal())]


# Reading the file

def parse_policy(text: str, source: str) -> Policy:
    """The policy in `text`; an empty file is a policy without caps. PolicyError names `source`."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise PolicyError(f"{source} is larger than {MAX_POLICY_BYTES // 1024} KiB; Honk does not read it")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PolicyError(f"{source} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise PolicyError(f"{source} is nested too deeply to be a policy") from None
    if data is None:
        return Policy()
    if not isinstance(data, dict):
        raise PolicyError(f"{source} must be a mapping with `caps`, `allowed_models`, `campaign_budget_usd` "
                          f"(it is {_shown(data)})")
    duplicate = _duplicate_key(root)
    if duplicate:
        key, line = duplicate
        raise PolicyError(f"{source}: `{key}` is set twice (again on line {line}); keep one")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = list(dict.fromkeys(_problem(error, root) for error in exc.errors()))
        raise PolicyError(f"{source}: " + "; ".join(problems)) from None


def read_policy(path: Path) -> Policy:
    """Read and check the file at `path` (no cache)."""
    source = f"the policy file {path} (HONK_POLICY_FILE)"
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{source} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_policy(text, source)


class PolicyCache:
    """The policy file, read again only when it changes (its modification time, size or inode)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[Path, tuple[tuple[int, int, int] | None, Policy | PolicyError]] = {}

    def get(self, path: Path | None) -> Policy | None:
        """None when no policy file is configured; PolicyError when it is configured but unusable."""
        if path is None:
            return None
        path = Path(path).expanduser()
        try:
            info = path.stat()
            stamp: tuple[int, int, int] | None = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError:
            stamp = None
        with self._lock:
            seen = self._seen.get(path)
            if seen is None or seen[0] != stamp or stamp is None:
                try:
                    found: Policy | PolicyError = read_policy(path)
                except PolicyError as exc:
                    found = exc
                seen = self._seen[path] = (stamp, found)
        if isinstance(seen[1], PolicyError):
            raise seen[1]
        return seen[1]


_cache = PolicyCache()


def current_policy(path: Path | None) -> Policy | None:
    """The policy at `path` as it is now (cached until the file changes); None when `path` is None."""
    return _cache.get(path)


# Error messages

_RULES = {
    "caps": "must be a mapping with any of `installation`, `organization`, `repository`, `requester`, `default`",
    "caps.default": "must be a mapping with any of `installation`, `organization`, `repository`, `requester`",
    "allowed_models": "must be a model name or a list of model names",
    "allowed_models[]": "must be a model name (a string)",
    "campaign_budget_usd": "must be a number of US dollars, 0 or more",
    "reserve_per_call_usd": "must be a number of US dollars above 0",
}
_USD = "must be a number of US dollars, 0 or more, or null for no cap"


def _problem(error: Any, root: yaml.Node | None) -> str:
    loc = tuple(error["loc"])
    line = _line_of(root, loc[:-1] if loc and loc[-1] == "[key]" else loc)
    at = f" (line {line})" if line else ""
    path = ".".join(str(p) for p in loc if not isinstance(p, int) and p != "[key]")
    name = f"item {loc[-1] + 1} of `{path}`" if loc and isinstance(loc[-1], int) else f"`{path}`"
    if error["type"] == "extra_forbidden":
        known = _known(loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean `{guess[0]}`?" if guess else "known ones are " + ", ".join(f"`{k}`" for k in known)
        return f"unknown key `{path}`{at}; {hint}"
    if error["type"] == "value_error":
        return f"{name} {str(error['msg']).removeprefix('Value error, ')}{at}"
    if loc[:1] == ("caps",) and len(loc) >= 3 and loc[1] in (*SCOPE_KINDS, "default"):
        rule = _USD if loc[-1] != "[key]" else "must be a name (a string)"
    else:
        rule = _RULES.get(".".join(str(p) for p in loc if not isinstance(p, int))
                          + ("[]" if isinstance(loc[-1], int) else ""), "has an invalid value")
    if loc[:1] == ("caps",) and len(loc) == 2 and loc[1] in SCOPE_KINDS:
        rule = f"must be a mapping of names to monthly caps in US dollars, such as `{_EXAMPLES[loc[1]]}: 100`"
    return f"{name} {rule} (got {_shown(error.get('input'))}){at}"


_EXAMPLES = {"installation": "12345", "organization": "acme", "repository": "acme/widgets", "requester": "alice"}


def _known(parent: tuple[Any, ...]) -> list[str]:
    if parent == ("caps", "default"):
        return list(DefaultCaps.model_fields)
    if parent == ("caps",):
        return list(Caps.model_fields)
    return list(Policy.model_fields)


def _shown(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    text = repr(value) if isinstance(value, str) else json.dumps(value) if value is None or isinstance(
        value, bool) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of the deepest part of it that exists."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value
                          if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            if found is None:
                return line
            key, node = found
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _duplicate_key(node: yaml.Node | None, path: str = "") -> tuple[str, int] | None:
    """PyYAML keeps the last of two equal keys silently; in a policy that hides a cap. Names compare as GitHub
    compares them, without case."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                name = f"{path}.{key.value}" if path else key.value
                if key.value.lower() in seen:
                    return name, key.start_mark.line + 1
                seen.add(key.value.lower())
                if found := _duplicate_key(value, name):
                    return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if found := _duplicate_key(item, path):
                return found
    return None


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
