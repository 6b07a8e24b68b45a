"""Rate limits shared by every web process: fixed-window counters in the database.

An app of its own so its one table and migration stand apart from the rest of `orbit`.
"""
