"""Chat: conversations kept or ephemeral, and answers grounded in the user's own records."""
