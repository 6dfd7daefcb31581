"""Create the admin user once. The password comes from DJANGO_SUPERUSER_PASSWORD (the runbook reads it
from Secrets Manager into this process's environment only); an existing user is left as it is."""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the admin superuser if it does not exist (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="")
        parser.add_argument("--check", action="store_true", help="report whether it exists; change nothing")

    def handle(self, *args, username: str, email: str, check: bool, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"admin {username}: present")
            return
        if check:
            self.stdout.write(f"admin {username}: absent, would be created")
            return
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not password:
            raise CommandError("DJANGO_SUPERUSER_PASSWORD is not set")
        User.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(f"admin {username}: created")
