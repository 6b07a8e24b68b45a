"""Django's SQLite backend with writers queued in the kernel: see base.py."""
