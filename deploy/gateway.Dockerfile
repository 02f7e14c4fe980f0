# The MCP tool gateway in a container: `immune gateway serve` on 0.0.0.0:8765.
#
#   docker build -f deploy/gateway.Dockerfile -t kosmoi-gateway .
#   docker run --rm -p 127.0.0.1:8765:8765 -v kosmoi-gateway:/data kosmoi-gateway
#   docker exec <container> immune gateway token --agent support --key-file /data/idp.key
#
# The IdP key and the event log live on the /data volume (the key is created
# there, mode 0600, on first start). The process runs as an unprivileged user
# with a read-only code tree; tool execution is simulated, so the container
# needs no network access beyond its listening port.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true

WORKDIR /app
COPY pyproject.toml README.md ./
COPY kosmoi ./kosmoi
COPY targets ./targets
COPY attackers ./attackers
COPY results ./results
COPY sim ./sim
COPY evolve ./evolve
COPY app ./app
RUN pip install . && useradd --system --home /data --uid 10001 gateway && mkdir -p /data && chown gateway /data

USER gateway
VOLUME ["/data"]
EXPOSE 8765
# Binding 0.0.0.0 inside the container: publish the port on 127.0.0.1 (as above) or behind a TLS proxy.
ENTRYPOINT ["immune", "gateway", "serve", "--host", "0.0.0.0", "--port", "8765", "--key-file", "/data/idp.key", "--out", "/data"]
