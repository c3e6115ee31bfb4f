# The Sightline code location image: the Dagster webserver, the daemon, the run workers, the stream consumer
# and the one-shot setup all use it. Pinned base image; runs as the unprivileged user `sightline`.
FROM python:3.11.7-slim-bookworm

RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/sightline
COPY pyproject.toml README.md requirements.lock ./
COPY ingestion ingestion
COPY quality quality
COPY orchestration orchestration
COPY transforms transforms
COPY site.yaml ./
# The deployed Dagster instance config (PostgreSQL storage); compose mounts the checkout's copy over it.
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY docker/workspace.yaml ./workspace.yaml
# Editable: transforms/ and site.yaml are found next to the packages, as in a checkout. The versions CI
# tested (requirements.lock) constrain the install.
RUN pip install --no-cache-dir -c requirements.lock -e .

# The code stays root's (read-only to the service); the user writes only Dagster's home, SQLMesh's cache
# and logs under transforms/, quality reports under data/, and the recordings volume.
RUN useradd --system --uid 10001 --user-group --home-dir /opt/sightline --no-create-home sightline \
    && mkdir -p data transforms/.cache transforms/logs /data/recordings \
    && chown -R sightline:sightline /opt/dagster/dagster_home data transforms/.cache transforms/logs \
       /data/recordings
USER sightline

ENV DAGSTER_HOME=/opt/dagster/dagster_home \
    SIGHTLINE_SITE=/opt/sightline/site.yaml

# The code server: the webserver and daemon load the definitions from it (workspace.yaml).
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "orchestration.definitions"]
