"""Load the initial data set: the U.S. District Court for the Northern District of Illinois, its judges,
and a deterministic set of sample cases. Idempotent: a second run changes nothing and adds no row.

The roster follows the court's public listing (2025); it is sample data for the example app, not a
source of truth. --cases N makes N sample cases (default 500) spread over the judges.
"""

import datetime
import random

from django.core.management.base import BaseCommand
from django.db import transaction

from courts.models import Case, Court, Judge

# (name, role, division)
ILND_JUDGES = [
    ("Virginia M. Kendall", "chief", "Eastern"),
    ("Rebecca R. Pallmeyer", "district", "Eastern"),
    ("Matthew F. Kennelly", "district", "Eastern"),
    ("Elaine E. Bucklo", "senior", "Eastern"),
    ("Robert W. Gettleman", "senior", "Eastern"),
    ("Charles P. Kocoras", "senior", "Eastern"),
    ("Joan H. Lefkow", "senior", "Eastern"),
    ("Harry D. Leinenweber", "senior", "Eastern"),
    ("John J. Tharp Jr.", "senior", "Eastern"),
    ("Thomas M. Durkin", "senior", "Eastern"),
    ("Sharon Johnson Coleman", "district", "Eastern"),
    ("Sara L. Ellis", "district", "Eastern"),
    ("Andrea R. Wood", "district", "Eastern"),
    ("Manish S. Shah", "district", "Eastern"),
    ("John Robert Blakey", "district", "Eastern"),
    ("Jorge L. Alonso", "district", "Eastern"),
    ("Edmond E. Chang", "district", "Eastern"),
    ("Mary M. Rowland", "district", "Eastern"),
    ("Steven C. Seeger", "district", "Eastern"),
    ("Franklin U. Valderrama", "district", "Eastern"),
    ("John F. Kness", "district", "Eastern"),
    ("Martha M. Pacold", "district", "Eastern"),
    ("Nancy L. Maldonado", "district", "Eastern"),
    ("Jeremy C. Daniel", "district", "Eastern"),
    ("LaShonda A. Hunt", "district", "Eastern"),
    ("Sunil R. Harjani", "district", "Eastern"),
    ("Lindsay C. Jenkins", "district", "Eastern"),
    ("April M. Perry", "district", "Eastern"),
    ("Georgia N. Alexakis", "district", "Eastern"),
    ("Iain D. Johnston", "district", "Western"),
    ("Sheila M. Finnegan", "magistrate", "Eastern"),
    ("Young B. Kim", "magistrate", "Eastern"),
    ("M. David Weisman", "magistrate", "Eastern"),
    ("Maria Valdez", "magistrate", "Eastern"),
    ("Gabriel A. Fuentes", "magistrate", "Eastern"),
    ("Jeffrey T. Gilbert", "magistrate", "Eastern"),
    ("Beth W. Jantz", "magistrate", "Eastern"),
    ("Heather K. McShain", "magistrate", "Eastern"),
    ("Keri L. Holleb Hotaling", "magistrate", "Eastern"),
    ("Jeannice W. Appenteng", "magistrate", "Eastern"),
    ("Daniel P. McLaughlin", "magistrate", "Eastern"),
    ("Laura K. McNally", "magistrate", "Eastern"),
    ("Margaret J. Schneider", "magistrate", "Western"),
    ("Lisa A. Jensen", "magistrate", "Western"),
]
NATURES_OF_SUIT = ["Civil Rights", "Contract", "Patent", "Securities", "Employment", "Personal Injury",
                   "Prisoner Petition", "Trademark", "Immigration", "Antitrust", "Consumer Credit", "Tax"]
PARTIES = ["Acme Corp.", "State of Illinois", "City of Chicago", "Midwest Freight LLC", "Lakeshore Bank",
           "United States", "Prairie Health", "Great Lakes Mutual", "Northside Tenants Union", "R. Alvarez",
           "J. Nowak", "M. Okafor", "T. Lindqvist", "Cook County", "Windy City Media"]


class Command(BaseCommand):
    help = "Load the Northern District of Illinois, its judges and sample cases (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=500, help="how many sample cases (default 500)")
        parser.add_argument("--check", action="store_true", help="report what would be added; change nothing")

    def handle(self, *args, cases: int, check: bool, **options):
        with transaction.atomic():
            summary = self._load(cases)
            if check:
                transaction.set_rollback(True)  # the same code path, nothing kept
        self.stdout.write(("would add: " if check else "") + summary)

    def _load(self, cases: int) -> str:
        court, court_created = Court.objects.get_or_create(
            slug="ilnd", defaults={"name": "U.S. District Court for the Northern District of Illinois",
                                   "circuit": "Seventh Circuit"})
        existing = set(Judge.objects.filter(court=court).values_list("name", flat=True))
        new_judges = [Judge(court=court, name=n, role=r, division=d) for n, r, d in ILND_JUDGES if n not in existing]
        Judge.objects.bulk_create(new_judges)
        judges = list(Judge.objects.filter(court=court).order_by("name"))

        # Deterministic cases: the same --cases always yields the same rows, so re-runs add nothing.
        rng = random.Random(1871)
        have = set(Case.objects.filter(court=court).values_list("number", flat=True))
        new_cases = []
        start = datetime.date(2023, 1, 2)
        for i in range(cases):
            number = f"1:{23 + i // 20000}-cv-{i % 20000 + 1:05d}"
            plaintiff, defendant = rng.sample(PARTIES, 2)
            judge = judges[rng.randrange(len(judges))]
            filed = start + datetime.timedelta(days=rng.randrange(1000))
            nature, status = rng.choice(NATURES_OF_SUIT), rng.choice(["open", "open", "closed"])
            if number not in have:
                new_cases.append(Case(number=number, title=f"{plaintiff} v. {defendant}", court=court, judge=judge,
                                      filed_on=filed, nature_of_suit=nature, status=status))
        Case.objects.bulk_create(new_cases, batch_size=5000)
        return (f"court: {'created' if court_created else 'present'}; judges: {len(new_judges)} added, "
                f"{len(judges)} in all; cases: {len(new_cases)} added, {len(have) + len(new_cases)} in all")
