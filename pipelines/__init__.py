"""edgesmith: from a dataset to the smallest, fastest edge model that meets an accuracy bar."""

__version__ = "0.1.0"
