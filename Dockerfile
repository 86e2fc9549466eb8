# quantops-exporter: the SEP operations runbook as Prometheus metrics on :9110.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY quantops_exporter ./quantops_exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home quantops
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
EXPOSE 9110
ENV QUANTOPS_LISTEN_ADDRESS=:9110 QUANTOPS_LOG_FORMAT=json
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9110/-/healthy', timeout=2)"
ENTRYPOINT ["quantops-exporter"]
CMD ["run"]
