"""The HTTP face: the app, the access rules, the job pages and JSON, /metrics, the first-run setup."""
