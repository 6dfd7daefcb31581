"""Production: behind CloudFront and the ALB on AWS, or on loopback in the golive sandbox.

Storage: with AWS_STORAGE_BUCKET_NAME set, static and media files go to S3 through django-storages;
without it (the sandbox's local app), WhiteNoise serves the collected static files.
"""

from .base import *  # noqa: F401,F403
from .base import env

# HTTPS everywhere; the ALB terminates TLS and says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env("SECURE_SSL_REDIRECT", "true") == "true"
SECURE_REDIRECT_EXEMPT = [r"^health/$"]  # the load balancer checks over plain HTTP
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
X_FRAME_OPTIONS = "DENY"

_static_bucket = env("AWS_STORAGE_BUCKET_NAME", "")
if _static_bucket:
    AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", "us-east-1")
    AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", "") or None  # the sandbox's emulator
    STORAGES = {
        # Media stays private: django-storages signs each URL.
        "default": {"BACKEND": "storages.backends.s3.S3Storage",
                    "OPTIONS": {"bucket_name": env("AWS_MEDIA_BUCKET_NAME"), "location": "media",
                                "file_overwrite": False}},
        # Static files under static/ in their bucket, served by CloudFront's /static/* behaviour on the
        # site's own domain (origin access control; the bucket itself stays private).
        # (django-storages' S3ManifestStaticStorage, with one listing of the bucket instead of a HEAD per file, and
        # uploads that overlap: config/storage.py.)
        "staticfiles": {"BACKEND": "config.storage.StaticStorage",
                        "OPTIONS": {"bucket_name": _static_bucket, "location": "static",
                                    "custom_domain": env("STATIC_DOMAIN", "") or None, "querystring_auth": False,
                                    # Small files: no transfer thread pool per upload (the storage runs several uploads at once).
                                    "use_threads": False}},
    }
else:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
