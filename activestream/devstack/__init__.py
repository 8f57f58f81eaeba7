"""Development stacks without Docker: a local Apache Kafka broker (KRaft) and a redis-server.

- :mod:`~activestream.devstack.local_kafka`: ``LocalKafka`` (``python -m activestream.devstack.local_kafka``
  runs one until Ctrl-C);
- :mod:`~activestream.devstack.redis_server`: ``LocalRedis``, and ``redis_url()`` (``REDIS_URL``, else a
  redis-server started for the duration).

Used by ``activestream up``, the simulator's embedded default, the tests and the benchmarks.
"""
