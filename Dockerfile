# The runbook's own image: what the ECS work pool's flow runs execute (`golive bootstrap ENV` builds and
# pushes it to golive-ENV-runbook). Not the app's image: that is examples/precedentum/Dockerfile (Phase 2).
FROM python:3.11-slim

# No telemetry from a flow run; the deployments' pull step changes into GOLIVE_PROJECT_DIR.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    GX_ANALYTICS_ENABLED=false \
    GOLIVE_PROJECT_DIR=/opt/golive

WORKDIR /opt/golive

# The pinned dependency set first: a change to the runbook's code reuses this layer.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY . .
RUN pip install --no-cache-dir --no-deps -e . \
    && useradd --uid 10001 --home-dir /opt/golive --no-create-home golive \
    && chown -R golive /opt/golive
USER golive

# The ECS worker supplies the command (`prefect flow-run execute`); this is for a manual look around.
CMD ["golive", "--help"]
