# One image for every Jilu service. docker-compose.yml runs it four times (and once for the
# migrations), choosing the service with `command: python <name>_service/main.py`. On its own,
#   docker run -p 8000:8000 -p 8002:8002 -e JILU_HOST=0.0.0.0 -v jilu-data:/app/data jilu
# runs the whole suite with the launcher and the embedded defaults (SQLite, embedded Redis).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# OpenCV (under the offline OCR engine) links libGL and GLib; without them pictures are
# skipped with "offline OCR is not available on this server" (docs/extraction.md).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

# The dependencies first, so this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code (.dockerignore keeps out .venv, data/ with its secret key, and caches). Compiled
# at build time because the running user cannot write next to the sources.
COPY . .
RUN python -m compileall -q main.py common web_service user_service mobile_service llm_service \
    && useradd --system --uid 10001 --home-dir /app jilu \
    && mkdir -p /app/data \
    && chown jilu:jilu /app/data
USER jilu

EXPOSE 8000 8001 8002 8003
CMD ["python", "main.py"]
