"""Shared library of the Jilu services: config, database, cache, security, clients.

`common` has no entry point and imports nothing from a service.
"""

__version__ = "0.1.0"
