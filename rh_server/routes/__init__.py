"""The server's routes, one module per concern; each gets only the parts of the server it needs.

- :mod:`.calls`: ``GET|POST /{name}/{method}``, the hot path (auth, served names, dispatcher).
- :mod:`.runs`: results kept on the cluster and their logs, ``/runs...`` (auth, run store).
- :mod:`.served`: ``PUT|DELETE /{name}``, ``/keys``, ``/status`` (auth, served names, runs).
- :mod:`.admin`: ``/health``, the server's own ``/logs``, tokens for other users ``/auth/tokens``
  (auth and its grants).
- :mod:`.openapi`: ``/openapi.json``, the routes' contract.
"""
