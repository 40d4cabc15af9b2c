"""Staff accounts, sessions (access and refresh tokens) and API tokens for integrations."""
