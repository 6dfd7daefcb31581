"""/health/: 200 only when the database and the cache both answer; 503 naming what is down otherwise.
The load balancer and the runbook's checks use it, so it must be cheap: one query, one cache round trip."""

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse


def health(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception as error:  # any failure means unhealthy; its class is what an operator needs
        checks["database"] = f"down: {type(error).__name__}"
        connection.close()  # do not reuse a broken persistent connection
    try:
        cache.set("health", "1", 5)
        checks["cache"] = "ok" if cache.get("health") == "1" else "down: no round trip"
    except Exception as error:
        checks["cache"] = f"down: {type(error).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)


class HealthCheckMiddleware:
    """Answer /health/ before Django validates the Host header. The ALB's health checker sends the task's
    private IP as Host, which ALLOWED_HOSTS rightly does not list; every other path is still validated."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/health/":
            return health(request)
        return self.get_response(request)
