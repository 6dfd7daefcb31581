#!/usr/bin/env bash
# Rendered by golive (Phase 6.3): release an image tag to an environment through the runbook.
# The runbook rolls the services, waits until they are stable and checks that the new revision is the one
# running (a deployment the circuit breaker rolled back fails here).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/deploy.sh ENVIRONMENT IMAGE_TAG

  ENVIRONMENT  production, staging, sandbox (golive's deployments/environments/NAME.toml) or a path
  IMAGE_TAG    the images' tag in ECR (CI tags them with the commit SHA)

Runs `golive release ENVIRONMENT --image IMAGE_TAG`; set GOLIVE to the golive executable if it is not
on PATH.
exit codes: 0 released and running; 1 the release failed or was rolled back; 2 usage; 127 no golive
USAGE
}

if [ "$#" -eq 1 ] && { [ "$1" = "-h" ] || [ "$1" = "--help" ]; }; then
  usage
  exit 0
fi
if [ "$#" -ne 2 ]; then
  usage >&2
  exit 2
fi
environment=$1
tag=$2
golive=${GOLIVE:-golive}
if ! command -v "$golive" >/dev/null 2>&1; then
  echo "deploy.sh: $golive not found; install the runbook or set GOLIVE" >&2
  exit 127
fi

if ! "$golive" release "$environment" --image "$tag"; then
  echo "deploy.sh: release of $tag to $environment failed (see above); scripts/rollback.sh $environment returns to the previous release" >&2
  exit 1
fi
