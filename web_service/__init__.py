"""web_service: What the browser loads: the web app and share pages (Flask) and the web API."""
