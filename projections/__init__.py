"""Read models (投影) following the global event log: facts stored, figures computed at query time."""
