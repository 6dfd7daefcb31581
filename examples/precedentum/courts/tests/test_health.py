"""/health/: 200 when the database and the cache answer, 503 naming what is down."""

from unittest import mock

from django.db import DatabaseError
from django.test import TestCase


class HealthTests(TestCase):
    def test_healthy_when_database_and_cache_answer(self):
        response = self.client.get("/health/")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json(), {"status": "ok", "database": "ok", "cache": "ok"})

    def test_answers_any_host_name(self):
        # The load balancer checks with the task's private IP as Host, which ALLOWED_HOSTS does not list.
        self.assertEqual(self.client.get("/health/", HTTP_HOST="10.40.10.7:8000").status_code, 200)

    def test_cache_down_is_503_naming_it(self):
        with mock.patch("config.health.cache.set", side_effect=ConnectionError("refused")):
            response = self.client.get("/health/")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["cache"], "down: ConnectionError")
        self.assertEqual(response.json()["database"], "ok")

    def test_database_down_is_503_naming_it(self):
        # close() is observed, not done: the test's own transaction lives on that connection.
        with mock.patch("config.health.connection.cursor", side_effect=DatabaseError("gone")), \
                mock.patch("config.health.connection.close") as close:
            response = self.client.get("/health/")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["database"], "down: DatabaseError")
        close.assert_called_once()  # a broken persistent connection is not reused
