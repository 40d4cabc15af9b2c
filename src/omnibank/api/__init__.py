"""The HTTP API: application factory, authentication, errors, hardening and idempotent writes."""
