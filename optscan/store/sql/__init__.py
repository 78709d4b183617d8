"""The SQL side of the durable stores: the database, and each store's tables and migrations.

Their modules are imported only when a store is first used, so that SQLAlchemy stays out of
commands that do not need it; component.py, which every store holds, loads none itself. The
stores' rules and public API live beside, in optscan/store/<store>.py.
"""
