#!/usr/bin/env bash
# Rendered by golive (Phase 6.3): an on-demand, named backup of an environment's database.
# In AWS an RDS snapshot, kept for the environment's backup retention; in the sandbox a pg_dump.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/backup-db.sh ENVIRONMENT [NAME]

  ENVIRONMENT  production, staging, sandbox (golive's deployments/environments/NAME.toml) or a path
  NAME         a label for the backup (letters, digits, '-'); default: manual

Runs `golive backup-db ENVIRONMENT --name NAME`. Set GOLIVE to the golive executable if it is not on PATH.
exit codes: 0 backup taken; 1 the backup failed; 2 usage; 127 no golive
USAGE
}

if [ "$#" -eq 1 ] && { [ "$1" = "-h" ] || [ "$1" = "--help" ]; }; then
  usage
  exit 0
fi
if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
  usage >&2
  exit 2
fi
environment=$1
name=${2:-manual}
if ! [[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]]; then
  echo "backup-db.sh: '$name' is not a usable name: lower-case letters, digits and '-', at most 31" >&2
  exit 2
fi
golive=${GOLIVE:-golive}
if ! command -v "$golive" >/dev/null 2>&1; then
  echo "backup-db.sh: $golive not found; install the runbook or set GOLIVE" >&2
  exit 127
fi

if ! "$golive" backup-db "$environment" --name "$name"; then
  echo "backup-db.sh: backup of $environment failed (see above)" >&2
  exit 1
fi
