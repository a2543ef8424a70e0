"""The plugin interfaces under the path plugins written for rh 0.1 import them from; they live in
:mod:`rh_core.plugin.interfaces` (or import them from :mod:`rh_core.plugin`)."""

from rh_core.plugin.interfaces import *  # noqa: F403
from rh_core.plugin.interfaces import __all__  # noqa: F401
