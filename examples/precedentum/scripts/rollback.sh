#!/usr/bin/env bash
# Rendered by golive (Phase 6.3): return an environment's services to the release before the current one.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/rollback.sh ENVIRONMENT

  ENVIRONMENT  production, staging, sandbox (golive's deployments/environments/NAME.toml) or a path

Runs `golive rollback ENVIRONMENT`: each service back on its previous task-definition revision, read back
from ECS, and CloudFront invalidated. Set GOLIVE to the golive executable if it is not on PATH.
exit codes: 0 rolled back; 1 the rollback failed (or there is no earlier release); 2 usage; 127 no golive
USAGE
}

if [ "$#" -eq 1 ] && { [ "$1" = "-h" ] || [ "$1" = "--help" ]; }; then
  usage
  exit 0
fi
if [ "$#" -ne 1 ]; then
  usage >&2
  exit 2
fi
environment=$1
golive=${GOLIVE:-golive}
if ! command -v "$golive" >/dev/null 2>&1; then
  echo "rollback.sh: $golive not found; install the runbook or set GOLIVE" >&2
  exit 127
fi

if ! "$golive" rollback "$environment"; then
  echo "rollback.sh: rollback of $environment failed (see above)" >&2
  exit 1
fi
