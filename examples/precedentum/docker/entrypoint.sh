#!/bin/sh
# Container entry point. With no arguments, or only options (`--timeout 60`), it starts the app server
# with them; anything else is a command run in the app's environment instead, e.g.
# `python manage.py migrate`. Migrations are not run here: the runbook runs them once, as a one-off task
# (Phase 5), so that several starting containers never race to migrate.
set -eu
case "${1:-}" in
    "" | -*) exec gunicorn config.wsgi:application --config gunicorn.conf.py "$@" ;;
    *) exec "$@" ;;
esac
