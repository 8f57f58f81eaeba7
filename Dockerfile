# activestream services image: `docker compose up` (see docker-compose.yml and deploy/README.md).
# Java is not needed: the broker is its own container (apache/kafka).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Every dependency ships manylinux wheels (confluent-kafka, onnxruntime, hiredis, faust-streaming,
# cramjam for aiokafka's lz4): no compiler in the image.
COPY pyproject.toml README.md ./
COPY activestream ./activestream
COPY streams ./streams
COPY scorer ./scorer
COPY retrainer ./retrainer
COPY schemas ./schemas
COPY labeling ./labeling
# label-studio-sdk without its dependencies: the labelstudio extra lists what it needs (pyproject.toml says why)
RUN pip install ".[faust,labelstudio]" && pip install --no-deps "label-studio-sdk>=2.1,<2.2"

RUN useradd --create-home --uid 10001 activestream
USER activestream

# /metrics and /healthz (each service is started with --metrics-port 9310 in docker-compose.yml)
EXPOSE 9310

ENTRYPOINT ["activestream"]
CMD ["--help"]
