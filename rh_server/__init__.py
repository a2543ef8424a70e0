"""The rh server that runs on every cluster node (``pip install 'rh-core[server]'``)."""
