"""mobile_service: what the mobile app talks to (records, sync, search, forwarded auth and AI)."""
