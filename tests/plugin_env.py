"""Loaded with `-p tests.plugin_env` before Django is set up: the test environment."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("ORBIT_TESTING", "1")
os.environ.setdefault("ORBIT_PIPELINE_MODULES", "tests.pipelines_for_tests")
# Documents stored by tests (the CLI's copies, uploads) go to a folder of the test run's
# own, never into the project's documents/; tests that look at it set their own.
if "ORBIT_DOCUMENTS_ROOT" not in os.environ:
    os.environ["ORBIT_DOCUMENTS_ROOT"] = tempfile.mkdtemp(prefix="orbit-test-documents-")
    atexit.register(shutil.rmtree, os.environ["ORBIT_DOCUMENTS_ROOT"], ignore_errors=True)
