"""What a job does: the registry (authorises once), the shared steps, one short file per kind, and what they
need (briefing, report wording, repository config, the push guard)."""
