# shopguard job image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY detectors detectors
COPY sinks sinks
COPY config config
RUN pip install --no-cache-dir .
EXPOSE 9464
ENTRYPOINT ["shopguard"]
CMD ["run", "--config", "/app/config/docker.toml"]
