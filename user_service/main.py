"""Run user_service on its own: `python user_service/main.py` (the launcher starts it this way)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.runner import run_service

if __name__ == "__main__":
    run_service("user", "user_service.app.main")
