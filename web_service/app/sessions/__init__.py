"""Browser sessions: the access token in the page's memory, the refresh token in an HttpOnly
cookie that only web_service sets and reads (user_service issues both)."""
