"""The real implementations of the service's ports: Docker (docker-py) and the catalog
(SQLAlchemy). Vendor errors are translated into :mod:`backup.errors` here, at the edge."""
