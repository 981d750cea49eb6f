"""The ledger's domain (领域): what can happen to units, people, cases and petitions, and what is allowed.

Pure Python on top of the eventsourcing library's aggregates: nothing here knows about HTTP or storage.
"""
