# shopguard job image (docker-compose.yml, deploy/k8s/).
#   docker build -t shopguard:0.1.0 .
# Runs as an unprivileged user; writes only under /data (outputs, recovery
# snapshots: mount a volume there).
FROM python:3.11-slim
WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin shopguard \
    && mkdir -p /data && chown shopguard /data
COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY detectors detectors
COPY sinks sinks
COPY simulator simulator
COPY analysis analysis
COPY workbench workbench
COPY config config
RUN pip install --no-cache-dir .
# One process of a cluster across hosts: its recovery share, then `shopguard run --process-id ...`.
COPY deploy/cluster-entrypoint.sh deploy/init-recovery-share.sh deploy/
USER 10001
# 9464: /metrics, /healthz, /readyz; 2101: Bytewax cluster traffic between processes.
EXPOSE 9464 2101
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=6 \
    CMD python -c "import urllib.request as u; [u.urlopen(f'http://127.0.0.1:9464/{p}', timeout=3) for p in ('healthz', 'readyz')]"
ENTRYPOINT ["shopguard"]
CMD ["run", "--config", "/app/config/docker.toml"]
