# agentgw: the proxy (`agentgw run`) and the Kubernetes controller (`agentgw controller`).
#   docker build -t ghcr.io/agentgw/agentgw:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
# a C compiler for the engine's optional C helpers (src/agentgw/engine/_speedups.c)
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install '.[kube]'

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN groupadd --system --gid 10001 agentgw \
 && useradd --system --uid 10001 --gid agentgw --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin agentgw
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
# 15000 admin (localhost only by default), 15020 metrics, 15021 readiness
EXPOSE 15020 15021
ENTRYPOINT ["agentgw"]
CMD ["run", "-f", "/etc/agentgw/config.yaml"]
