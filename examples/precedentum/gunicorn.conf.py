"""gunicorn settings from the environment: the container sets them for its CPU share (Phase 2's
Dockerfile), the sandbox for its two cores."""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
keepalive = 5
proc_name = os.environ.get("GUNICORN_PROC_NAME", "precedentum")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None  # off by default: it costs throughput
errorlog = "-"
forwarded_allow_ips = "*"  # behind the ALB, which sets X-Forwarded-*
