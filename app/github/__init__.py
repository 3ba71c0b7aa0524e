"""GitHub's REST API as the App (tokens, identity, the calls Honk makes)."""
