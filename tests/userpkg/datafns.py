"""User code the data tests send to clusters: what a function receives for a folder, a blob or a
table passed to it."""

from __future__ import annotations

import os


def listing(path):
    """The folder's files (relative, sorted) and where the function found it."""
    names = sorted(os.path.relpath(os.path.join(d, f), path)
                   for d, _, files in os.walk(path) for f in files)
    return path, names


def read_file(path, name):
    with open(os.path.join(path, name), "rb") as f:
        return f.read()


def size_of(data):
    return type(data).__name__, len(data)


def summary(table):
    """A table's type, rows and columns as the function sees them."""
    return type(table).__name__, table.num_rows, table.column_names


def first_item(items):
    return items[0]


class Holder:
    """A served class whose __init__ takes a folder: it gets the path."""

    def __init__(self, path):
        self.path = path

    def files(self):
        return sorted(os.listdir(self.path))
