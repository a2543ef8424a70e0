"""Resource records: clusters, functions, modules, envs, packages."""

from rh_core.resources.base import Resource
from rh_core.resources.cluster import Cluster
from rh_core.resources.env import Env, GitPackage, Package
from rh_core.resources.function import Function
from rh_core.resources.module import Module

__all__ = ["Cluster", "Env", "Function", "GitPackage", "Module", "Package", "Resource"]
