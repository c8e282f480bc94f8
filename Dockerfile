# One image for the central system and the simulator (docker-compose.yml runs both from it).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY csms ./csms
COPY simulator ./simulator
COPY config ./config
RUN uv sync --frozen --no-dev
ENV PATH="/opt/venv/bin:$PATH" CSMS_DATABASE__URL="sqlite+aiosqlite:////data/csms.db" CSMS_LOG__FORMAT=json
# The database lives in a volume the unprivileged user can write.
RUN mkdir -p /data && chown nobody:nogroup /data
VOLUME ["/data"]
EXPOSE 9000 8080
USER nobody
CMD ["csms", "serve", "--config", "config/csms.toml"]
