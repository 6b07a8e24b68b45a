"""The operators' console: the dashboard at /dashboard/ and the admin at /admin/."""
