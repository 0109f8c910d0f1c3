"""The account domain shared by every service: users and personal API tokens.

The models live in `common/` because every service verifies tokens and checks users itself
(no call to user_service per request); user_service owns the routes that change them.
"""
