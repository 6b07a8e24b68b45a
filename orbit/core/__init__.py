"""Orbit's foundations: settings access, exceptions, the audit trail, redaction, the clock.

Imports Django and the standard library only, never an app of ours, so every layer above
(pipelines, runs, services, the web, the console, the API and the CLI) may use it.
"""
