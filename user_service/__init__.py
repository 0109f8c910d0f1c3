"""user_service: Users, registration, login, tokens, roles and API tokens."""
