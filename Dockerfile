# quizroom: multi-stage build. The builder makes the wheels (ours and every dependency's); the runtime stage installs
# only those, with no network, into a slim image and runs as a non-root user. Base images are pinned to a full tag.
# Build: make image (or: DOCKER_BUILDKIT=1 docker build -t quizroom .)   Run: docker run -p 8000:8000 -v quizroom-data:/data quizroom
# Where TLS is intercepted, give the builder the CA bundle that trusts the interceptor (nothing of it reaches the image):
#   docker build --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt -t quizroom .

FROM python:3.11.13-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change, not on every edit.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip wheel --wheel-dir /wheels -r requirements.txt
COPY README.md ./
COPY server/ server/
COPY rooms/ rooms/
COPY storage/ storage/
COPY migrations/ migrations/
COPY clients/ clients/
COPY bench/ bench/
# The wheel carries migrations/*.sql and clients/web/* as package data (pyproject.toml) and no tests; the check fails
# the build if that is not so, since a server without them cannot migrate or serve its pages.
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
    && pip wheel --no-deps --wheel-dir /wheels . \
    && python -c "import glob, sys, zipfile; names = zipfile.ZipFile(glob.glob('/wheels/quizroom-*.whl')[0]).namelist(); sys.exit(0 if any(n.startswith('quizroom/migrations/') and n.endswith('.sql') for n in names) and 'quizroom/clients/web/index.html' in names and not any('/tests/' in n for n in names) else 'wheel lacks migrations or web pages, or carries tests')"

FROM python:3.11.13-slim-bookworm AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=builder /wheels /wheels
RUN pip install --no-index --find-links=/wheels /wheels/quizroom-*.whl && rm -rf /wheels \
    && groupadd --system --gid 10001 quizroom \
    && useradd --system --uid 10001 --gid quizroom --home-dir /data --shell /usr/sbin/nologin quizroom \
    && mkdir -p /data && chown quizroom:quizroom /data

# SQLite on the volume by default; set QUIZROOM_DATABASE_URL=postgresql://… to use PostgreSQL instead. The server
# writes where it listens to the address file once bound; the healthcheck asks that address, whatever --port says.
ENV QUIZROOM_HOST=0.0.0.0 \
    QUIZROOM_PORT=8000 \
    QUIZROOM_DATABASE_URL=sqlite:////data/quizroom.db \
    QUIZROOM_LOG_FORMAT=json \
    QUIZROOM_ADDRESS_FILE=/tmp/quizroom.address
VOLUME ["/data"]
WORKDIR /data
USER quizroom:quizroom
EXPOSE 8000

# `quizroom health` asks /healthz (alive; /readyz is for the load balancer) at the address the server wrote.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["quizroom", "health"]

# SIGTERM (docker stop) drains: sockets get 1001, queued answers commit. Give it QUIZROOM_SHUTDOWN_TIMEOUT_S.
STOPSIGNAL SIGTERM
ENTRYPOINT ["quizroom", "serve"]
CMD ["--host", "0.0.0.0"]
