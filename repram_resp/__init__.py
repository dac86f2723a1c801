"""repram-resp: REPRAM (replicated, ephemeral RAM) served over the Redis protocol."""

__version__ = "0.1.0"
# The Redis version we report in INFO / HELLO.  Clients gate features on it
# (CLIENT SETINFO needs >= 7.2, EXPIRETIME needs >= 7.0, redis-py's client-side
# cache needs >= 7.4), so claim the Redis
# release whose command surface we mirror.
REDIS_COMPAT_VERSION = "7.4.0"
