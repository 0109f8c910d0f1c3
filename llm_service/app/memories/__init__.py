"""Memories: facts the assistant keeps about its user, extracted from records and chats or
written by the user, deduplicated, short-term ones expiring and long-term ones decaying."""
