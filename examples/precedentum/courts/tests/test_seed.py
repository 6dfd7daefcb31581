"""seed_ilnd_data: the court, its judges and deterministic cases; a re-run adds nothing; --check writes nothing."""

from io import StringIO

from django.core.management import call_command
from django.test import TestCase

from courts.management.commands.seed_ilnd_data import ILND_JUDGES
from courts.models import Case, Court, Judge


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_ilnd_data", *args, stdout=out)
    return out.getvalue()


class SeedTests(TestCase):
    def test_loads_the_court_judges_and_cases(self):
        output = seed("--cases", "40")
        self.assertEqual(Court.objects.get().slug, "ilnd")
        self.assertEqual(Judge.objects.count(), len(ILND_JUDGES))
        self.assertEqual(Case.objects.count(), 40)
        self.assertIn(f"judges: {len(ILND_JUDGES)} added", output)

    def test_a_second_run_adds_nothing_and_the_cases_are_the_same(self):
        seed("--cases", "40")
        first = list(Case.objects.order_by("number").values_list("number", "title", "judge__name", "filed_on"))
        output = seed("--cases", "40")
        self.assertIn("judges: 0 added", output)
        self.assertIn("cases: 0 added, 40 in all", output)
        self.assertEqual(first, list(Case.objects.order_by("number").values_list("number", "title", "judge__name", "filed_on")))

    def test_check_reports_without_writing(self):
        output = seed("--cases", "10", "--check")
        self.assertTrue(output.startswith("would add: court: created"))
        self.assertEqual((Court.objects.count(), Judge.objects.count(), Case.objects.count()), (0, 0, 0))
