"""Alembic migrations, shipped in the package and applied by :func:`hypero.connect`."""
