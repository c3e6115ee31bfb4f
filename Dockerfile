# The Sightline code location image: the Dagster webserver, the daemon and the run workers all use it.
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/sightline
COPY pyproject.toml README.md ./
COPY ingestion ingestion
COPY quality quality
COPY orchestration orchestration
COPY transforms transforms
COPY site.yaml dagster.yaml ./
COPY docker/workspace.yaml ./workspace.yaml
# Editable: transforms/ and site.yaml are found next to the packages, as in a checkout.
RUN pip install --no-cache-dir -e . \
    && mkdir -p /opt/dagster/dagster_home \
    && cp dagster.yaml /opt/dagster/dagster_home/dagster.yaml

ENV DAGSTER_HOME=/opt/dagster/dagster_home \
    SIGHTLINE_SITE=/opt/sightline/site.yaml

# The code server: the webserver and daemon load the definitions from it (workspace.yaml).
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "orchestration.definitions"]
