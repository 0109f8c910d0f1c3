"""Public share links: an unguessable slug per shared record, readable without login."""
