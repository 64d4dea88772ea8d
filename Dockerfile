# syntax=docker/dockerfile:1
# NetRoom's image: one image for every role (`netroom web`, `worker`, `migrate`, `check`, ...),
# as deploy/compose.yaml runs it. Build: `docker build -t netroom .` at the repository root.
# Every dependency ships a wheel for linux/amd64, so no compiler is needed in either stage.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app
# The dependencies alone first (from pyproject.toml), so that a change of code reuses this layer.
COPY pyproject.toml ./
RUN pip install --no-cache-dir . && pip uninstall --yes netroom
COPY . .
# The service runs from its source tree (the catalogue, the migrations and the templates are
# found beside the code): put /app on the venv's path, give it a `netroom` command and compile
# the message catalogues, which are build output.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN echo /app > "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/netroom-app.pth" \
    && printf '#!/opt/venv/bin/python\nfrom netroom.cli import main\n\nraise SystemExit(main())\n' \
        > /opt/venv/bin/netroom \
    && chmod 0755 /opt/venv/bin/netroom \
    && pybabel compile -d locales -D messages \
    && python -m compileall -q -j 0 /app /opt/venv

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/data \
    WEB__HOST=0.0.0.0 \
    WEB__PORT=8080
RUN groupadd --system --gid 10001 netroom \
    && useradd --system --uid 10001 --gid netroom --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin netroom \
    && mkdir /data \
    && chown netroom:netroom /data \
    && chmod 0700 /data
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# /healthz answers while the process serves; containers without a web app (workers, the
# scheduler, one-off commands) turn this off in deploy/compose.yaml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
ENTRYPOINT ["netroom"]
CMD ["web"]
