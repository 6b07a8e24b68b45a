"""Loaded with `-p tests.plugin_env` before Django is set up: the test environment."""

import os

os.environ.setdefault("ORBIT_TESTING", "1")
os.environ.setdefault("ORBIT_PIPELINE_MODULES", "tests.pipelines_for_tests")
