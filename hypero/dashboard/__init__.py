"""``hypero dashboard``: a live, read-only web page and JSON API over hypero's store.

:mod:`hypero.dashboard.api` holds the queries (SQLAlchemy only, so :mod:`hypero.curves` uses them
too); :mod:`hypero.dashboard.app` the Starlette application and its server, which need the
``hypero[dashboard]`` extra; ``static/`` the page, with its charting library (uPlot) vendored.
"""
