"""The JSON API over courts, judges and cases, on the seeded data."""

from django.core.cache import cache
from django.core.management import call_command
from django.test import TestCase

from courts.models import Case, Judge


class ApiTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        call_command("seed_ilnd_data", "--cases", "60", stdout=open("/dev/null", "w"))

    def setUp(self):
        cache.clear()  # the roster is cached in Redis: each test starts without it

    def test_courts_lists_the_northern_district(self):
        response = self.client.get("/api/courts/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual([c["slug"] for c in response.json()["results"]], ["ilnd"])

    def test_judges_filters_by_court_and_is_cached(self):
        response = self.client.get("/api/judges/", {"court": "ilnd"})
        self.assertEqual(response.status_code, 200)
        names = [j["name"] for j in response.json()["results"]]
        self.assertEqual(len(names), Judge.objects.count())
        self.assertIn("Virginia M. Kendall", names)
        self.assertIsNotNone(cache.get("judges:ilnd"))
        self.assertEqual(self.client.get("/api/judges/", {"court": "nowhere"}).json()["results"], [])

    def test_judge_shows_recent_cases_and_404s_when_unknown(self):
        judge = Case.objects.first().judge
        body = self.client.get(f"/api/judges/{judge.id}/").json()
        self.assertEqual(body["name"], judge.name)
        self.assertTrue(all(c["judge"] == judge.id for c in body["recent_cases"]))
        self.assertEqual(self.client.get("/api/judges/999999/").status_code, 404)

    def test_cases_paginate_and_filter_by_judge(self):
        body = self.client.get("/api/cases/").json()
        self.assertEqual(body["count"], 60)
        self.assertEqual(len(body["results"]), 50)
        self.assertEqual(len(self.client.get("/api/cases/", {"page": 2}).json()["results"]), 10)
        judge = Case.objects.first().judge_id
        filtered = self.client.get("/api/cases/", {"judge": judge}).json()
        self.assertEqual(filtered["count"], Case.objects.filter(judge_id=judge).count())

    def test_case_by_number(self):
        case = Case.objects.first()
        self.assertEqual(self.client.get(f"/api/cases/{case.number}/").json()["title"], case.title)
        self.assertEqual(self.client.get("/api/cases/1:99-cv-99999/").status_code, 404)

    def test_the_api_only_reads(self):
        self.assertEqual(self.client.post("/api/courts/").status_code, 405)
