#!/bin/sh
# Container entry point: the app server. Migrations are not run here: the runbook runs them once, as a
# one-off task (Phase 5), so that several starting containers never race to migrate.
set -eu
exec gunicorn config.wsgi:application --config gunicorn.conf.py "$@"
