# CallMark: gunicorn workers plus the scheduler, against the Redis named by REDIS_URL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    CALLMARK_DATA_DIR=/data

WORKDIR /srv/callmark
COPY requirements.txt .
COPY sync/requirements.txt sync/
RUN pip install -r requirements.txt

COPY . .
RUN useradd --system --uid 10001 --home-dir /srv/callmark callmark \
    && mkdir -p /data && chown callmark /data
USER callmark

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=4)"
# app.py runs gunicorn (several workers, graceful shutdown) and the scheduler beside it.
CMD ["python", "app.py"]
