"""Virtual keys: created, changed and revoked at run time, stored hashed in the ledger's database.

``settings`` (imported by config.py) stays free of imports back into the package; the store
(``store``), each replica's view (``registry``) and the guard (``guard``) are imported from their modules.
"""
