"""bookwarm: warm a book-metadata cache from library exports.

The ``bookwarm`` package is the plain async core: parsing, settings, local services, providers and
cache tiers. It never imports Prefect, so it can be tested and reused alone; the Prefect layer lives
in the top-level ``flows``, ``tasks``, ``blocks`` and ``deployments`` packages.
"""

__version__ = "0.2.0"
