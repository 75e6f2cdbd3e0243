"""What the composition root starts and the use cases report to: the broker transport and the
embedded tansu broker, Milvus Lite's and the PyPI Milvus server's processes, metrics, logging.
Nothing here knows a use case."""
