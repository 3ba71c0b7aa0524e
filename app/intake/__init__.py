"""What arrives: the webhook route and the trigger rules that turn an event into a typed job request."""
