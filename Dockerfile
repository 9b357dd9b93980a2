# The machi image: ingest, api, simulator and the CLI (docker-compose.yml runs it).
FROM python:3.11-slim

# No compilers needed: every dependency ships wheels for linux/amd64 and arm64.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/machi

COPY pyproject.toml README.md ./
COPY contract ./contract
COPY machi ./machi
COPY ingest ./ingest
COPY edge ./edge
COPY api ./api
COPY portal ./portal
COPY dashboards ./dashboards
COPY firmware_bridge ./firmware_bridge
COPY deploy ./deploy
RUN pip install . \
    && install -m 0755 deploy/compose/healthcheck.py /usr/local/bin/machi-healthcheck \
    && useradd --system --uid 10001 --home-dir /var/lib/machi --create-home machi

USER machi
WORKDIR /var/lib/machi
CMD ["machi", "--help"]
