"""The operator console: the admin API (``/admin/``) and the dashboard (``/ui``), behind ``server.admin_key``."""
