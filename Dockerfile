# The streamml command in a small image: `docker build -t streamml .`
# docker-compose.yml runs it as `streamml worker` against the kafka service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamml ./streamml
COPY topics ./topics
COPY connectors ./connectors
RUN pip install . \
    && useradd --create-home --uid 10001 streamml

USER streamml
WORKDIR /home/streamml
ENTRYPOINT ["streamml"]
CMD ["--help"]
