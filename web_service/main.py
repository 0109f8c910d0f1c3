"""Run web_service on its own: `python web_service/main.py` (the launcher starts it this way)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.runner import run_service

if __name__ == "__main__":
    run_service("web", "web_service.app.main")
