"""WSGI entry point for gunicorn (`web: gunicorn orbit.wsgi`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orbit.settings")

application = get_wsgi_application()
