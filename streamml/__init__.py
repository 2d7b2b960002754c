"""streamml: TFX re-imagined as an event-driven streaming system.

Components are stream processors connected by topics. The topics live on a
partitioned, offset-addressed log: an embedded on-disk log by default, or
Apache Kafka (``kafka://host:port``).
"""

__version__ = "0.1.0"
