"""Message bus port and its adapters (in-process for the embedded default, Kafka for the distributed mode)."""
