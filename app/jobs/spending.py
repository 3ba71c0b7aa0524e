"""The operator's spending policy applied to a job (CONTRACT section 9).

`open_gate` runs before a job's first model call: it refuses the job when the policy file is broken, when a
model it would use is not allowed, or when a cap that applies to it is already reached; otherwise it returns a
`JobSpend`, the `SpendGate` the agent loop asks before every model call and tells what each call cost. Every
call goes into the ledger (app/queue/spending.py), with or without a policy; caps apply only with one.

A run that reaches a cap stops before its next model call (so within one turn), keeps its work, and says so
(app/jobs/steps.py). The judge goes through the same gate: past a cap it does not run, and its verdict says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from app.agent.judge import JudgeVerdict
from app.agent.pricing import Usage
from app.jobs.repo_config import DEFAULT_SOURCE, RepoConfig
from app.policy import Policy, PolicyError, current_policy
from app.queue.context import JobContext, JobFailed
from app.queue.spending import Call, Spender, SpendLedger

log = logging.getLogger("honk.spending")
BROKEN = ("this Honk's spending policy cannot be read, so I run no model until its operator fixes it (`honk doctor` "
          "says what is wrong)")


class JobSpend:
    """One job's `SpendGate`: admits each model call against the caps (reserving an estimate of it) and records
    what it cost. One call at a time, as the agent loop and the judge make them."""

    def __init__(self, ctx: JobContext, ledger: SpendLedger | None = None) -> None:
        self.ctx = ctx
        self.ledger = ledger or SpendLedger(ctx.queue.db)
        job = ctx.job
        self.spender = Spender(job.installation_id, job.repo, job.requester)
        self._reservation: int | None = None
        self._largest = 0.0  # the costliest call so far: the estimate of the next one

    def policy(self) -> Policy | None:
        """The policy as the file says now (read again when it changes); PolicyError when it is broken."""
        try:
            return current_policy(self.ctx.settings.honk_policy_file)
        except PolicyError as exc:
            log.error("job %s: %s", self.ctx.job.id, exc)
            raise

    async def admit(self, model: str) -> str | None:
        """None to go on; else, in words, why this call may not be made (a cap, or a model not allowed)."""
        try:
            policy = self.policy()
        except PolicyError:
            await self.close()
            return BROKEN
        if policy is not None and not policy.model_allowed(model):
            await self.close()
            return f"the model `{model}` is not among the models this Honk's policy allows"
        caps = policy.caps_for(self.spender.scopes) if policy is not None else {}
        if not caps:
            await self.close()  # nothing to reserve; the reservation of an earlier call that failed goes now
            return None
        amount = max(policy.reserve_per_call_usd, self._largest)
        admission = await asyncio.to_thread(self.ledger.admit, self.spender, caps, amount,
                                            job_id=self.ctx.job.id, release=self._reservation)
        self._reservation = admission.reservation
        if admission.refusal is not None:
            return admission.refusal.words
        return None

    async def spent(self, model: str, usage: Usage, cost_usd: float, kind: str = "agent",
                    provider: str | None = None) -> None:
        """Record one call (`provider`: the one that answered, when the caller knows it; else the configured one)."""
        self._largest = max(self._largest, cost_usd)
        reservation, self._reservation = self._reservation, None
        settings = self.ctx.settings
        if provider is None:
            provider = (settings.honk_judge_provider or settings.honk_provider) if kind == "judge" \
                else settings.honk_provider
        await asyncio.to_thread(self.ledger.record, self.spender,
                                Call(model=model, provider=provider, kind=kind, cost_usd=cost_usd, usage=dict(usage),
                                     job_id=self.ctx.job.id), reservation=reservation)

    async def close(self) -> None:
        """Drop a reservation whose call never reported (it failed), so that it stops counting at once."""
        reservation, self._reservation = self._reservation, None
        if reservation is not None:
            await asyncio.to_thread(self.ledger.release, reservation)

    async def __aenter__(self) -> JobSpend:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


async def open_gate(ctx: JobContext, config: RepoConfig) -> JobSpend:
    """The job's gate, once the policy allows the job to start: the policy file reads, every model the job would
    use is allowed, and no cap that applies is reached yet. Otherwise JobFailed says which, for the status
    comment."""
    gate = JobSpend(ctx)
    try:
        policy = gate.policy()
    except PolicyError as exc:
        # What is wrong goes to the operator (the log, the job page, `honk doctor`), not to GitHub: the file names
        # other organizations and repositories.
        await ctx.audit.record("spend.policy_broken", error=str(exc))
        raise JobFailed(BROKEN + ". Ask again once it is fixed.", retry=True) from None
    if policy is None:
        return gate
    settings = ctx.settings
    models = [(config.model_over(settings), f"`model:` in `{DEFAULT_SOURCE}`" if config.model else "HONK_MODEL")]
    if settings.honk_judge:
        models.append((settings.judge_model, "HONK_JUDGE_MODEL" if settings.honk_judge_model else "HONK_MODEL"))
    for model, source in models:
        if not policy.model_allowed(model):
            allowed = ", ".join(f"`{m}`" for m in policy.allowed_models or [])
            fix = (f"Choose one of them in `{DEFAULT_SOURCE}` and ask again." if source.startswith("`model:`")
                   else "Its operator can change the setting or the policy.")
            await ctx.audit.record("spend.refused", model=model, source=source, allowed=policy.allowed_models)
            raise JobFailed(f"the model `{model}` ({source}) is not allowed by this Honk's spending policy, which "
                            f"allows {allowed}. {fix}", retry=False)
    caps = policy.caps_for(gate.spender.scopes)
    if caps:
        refusal = await asyncio.to_thread(gate.ledger.reached, gate.spender, caps)
        if refusal is not None:
            await ctx.audit.record("spend.refused", cap=refusal.scope.kind, key=refusal.scope.key,
                                   spent_usd=round(refusal.spent, 6), cap_usd=refusal.cap, month=refusal.month)
            raise JobFailed(f"a monthly spending cap is reached: {refusal.words}. I did not start the work.",
                            retry=False)
    return gate


async def judged(gate: JobSpend | None, model: str, review: Callable[[], Awaitable[JudgeVerdict]]) -> JudgeVerdict:
    """The judge's verdict through the gate: not asked past a cap (an undecided verdict says why), and its cost
    recorded."""
    if gate is not None and (cap := await gate.admit(model)) is not None:
        await gate.ctx.audit.record("spend.judge_skipped", reason=cap)
        return JudgeVerdict(decision="undecided", reason=f"it was not asked, because {cap}", model=model,
                            cost_usd=0.0, usage={}, diff_cut=False, error=cap)
    verdict = await review()
    if gate is not None:
        await gate.spent(verdict.model, verdict.usage, verdict.cost_usd, kind="judge")
    return verdict
