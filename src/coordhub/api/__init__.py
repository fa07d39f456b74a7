"""The HTTP front end: the seed-001 REST protocol under ``/api/coord/``, thin over the core."""
