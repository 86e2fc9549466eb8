# quantops-exporter: the SEP operations runbook as Prometheus metrics on :9110.
#   docker build -t quantops-exporter .
#   docker run -p 9110:9110 -e VALKEY_URL=redis://valkey:6379/0 -e SEP_API_URL=http://backend:8000 quantops-exporter
#   docker run -p 9110:9110 quantops-exporter demo      # the built-in simulated stack
FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first, pinned and hash-checked (deploy/requirements.lock, `make lock`), so they
# cache apart from the source and rebuild identically. tests/deploy/test_image_install.py runs
# these pip steps in throwaway venvs and starts the result.
COPY deploy/requirements.lock ./
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY quantops_exporter ./quantops_exporter
# `docker build --build-arg REVISION=$(git rev-parse --short HEAD) --build-arg
# REVISION_DATE=$(git log -1 --format=%cs)`: shown by --version and quantops_exporter_build_info.
ARG REVISION=unknown REVISION_DATE=unknown
RUN echo "$REVISION $REVISION_DATE" > quantops_exporter/_revision.txt
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="quantops-exporter" \
      org.opencontainers.image.description="SEP operations runbook as Prometheus metrics"
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin quantops
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl && rm -rf /wheels
USER 10001:10001
EXPOSE 9110
ENV QUANTOPS_LISTEN_ADDRESS=:9110 \
    QUANTOPS_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
# The daemon's own settings say where and how to probe (port, HTTPS when the web config sets
# TLS); /-/healthy needs no credentials (QUANTOPS_WEB_PROBES_NEED_AUTH=false).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["quantops-exporter", "healthcheck"]
ENTRYPOINT ["quantops-exporter"]
CMD ["run"]
