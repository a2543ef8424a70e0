"""Data: folders, blobs and tables on this machine, in object storage or on a cluster."""

from rh_core.resources.data.blob import Blob, blob
from rh_core.resources.data.folder import Folder, folder
from rh_core.resources.data.table import Table, table

__all__ = ["Blob", "Folder", "Table", "blob", "folder", "table"]
