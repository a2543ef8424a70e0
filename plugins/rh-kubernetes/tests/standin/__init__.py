"""A stand-in for the Kubernetes API server and one node, for rh-kubernetes' tests: see
``api.py`` for the routes it serves, ``kubelet.py`` for what its controllers and node do, and
``sandbox.py`` for how its pods run on this machine."""
