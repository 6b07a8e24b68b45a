"""Make sure a staff login exists (`make run`): from DJANGO_SUPERUSER_* or a generated one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from orbit.cli import site_url

PASSWORD_FILE = ".admin-password"


class Command(BaseCommand):
    help = "Create the first superuser if none exists, and say how to log in."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL") or ""
        saved = Path(settings.BASE_DIR) / PASSWORD_FILE
        login = f"{site_url()}/admin/"
        if User.objects.filter(is_superuser=True).exists():
            if User.objects.filter(username=username).exists() and saved.exists() and not password:
                self.stdout.write(f"Log in at {login} as {username} / {saved.read_text().strip()}")
            else:
                self.stdout.write(f"A superuser exists; log in at {login}")
            return
        if not password:
            password = secrets.token_urlsafe(12)
            saved.write_text(password + "\n")
            saved.chmod(0o600)
        User.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(f"Created superuser. Log in at {login} as {username} / {password}")
