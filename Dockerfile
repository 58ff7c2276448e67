# quizroom: multi-stage build. The builder makes a wheel; the runtime stage installs only that wheel (with its
# dependencies) into a slim image and runs as a non-root user. Base images are pinned to a full version tag.
# Build: docker build -t quizroom .   Run: docker run -p 8000:8000 -v quizroom-data:/data quizroom

FROM python:3.11.13-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server/ server/
COPY rooms/ rooms/
COPY storage/ storage/
COPY migrations/ migrations/
COPY clients/ clients/
COPY bench/ bench/
# The wheel carries migrations/*.sql and clients/web/* as package data (pyproject.toml); the check fails the build
# if they went missing, since a server without them cannot migrate or serve its pages.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -c "import glob, sys, zipfile; names = zipfile.ZipFile(glob.glob('/wheels/quizroom-*.whl')[0]).namelist(); sys.exit(0 if any(n.startswith('quizroom/migrations/') and n.endswith('.sql') for n in names) and 'quizroom/clients/web/index.html' in names else 'wheel lacks migrations or web pages')"

FROM python:3.11.13-slim-bookworm AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=builder /wheels /wheels
RUN pip install /wheels/quizroom-*.whl && rm -rf /wheels \
    && groupadd --system --gid 10001 quizroom \
    && useradd --system --uid 10001 --gid quizroom --home-dir /data --shell /usr/sbin/nologin quizroom \
    && mkdir -p /data && chown quizroom:quizroom /data

# SQLite on the volume by default; set QUIZROOM_DATABASE_URL=postgresql://… to use PostgreSQL instead.
ENV QUIZROOM_HOST=0.0.0.0 \
    QUIZROOM_PORT=8000 \
    QUIZROOM_DATABASE_URL=sqlite:////data/quizroom.db \
    QUIZROOM_LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
USER quizroom:quizroom
EXPOSE 8000

# slim has no curl: the standard library asks /healthz (alive; /readyz is for the load balancer).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('QUIZROOM_PORT', '8000'), timeout=2)"]

# SIGTERM (docker stop) drains: sockets get 1001, queued answers commit. Give it QUIZROOM_SHUTDOWN_TIMEOUT_S.
STOPSIGNAL SIGTERM
ENTRYPOINT ["quizroom", "serve"]
CMD ["--host", "0.0.0.0"]
