from django.contrib import admin
from django.urls import include, path, re_path

from config.health import health
from courts.views import spa

urlpatterns = [
    path("health/", health),
    path("admin/", admin.site.urls),
    path("api/", include("courts.urls")),
    # Everything else is the frontend: the single-page app routes on the client.
    re_path(r"^(?!api/|admin/|static/|health/).*$", spa),
]
