"""`GET /api/v1/events`: the caller's record events, live, as Server-Sent Events."""
