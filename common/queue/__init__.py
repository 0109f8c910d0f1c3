"""Durable background work on Redis: a job queue on a stream with a consumer group, the
workers that drain it, and a lock for work done once across processes."""

from common.queue.lock import RedisLock
from common.queue.stream import DurableQueue, Job, QueueStatus
from common.queue.workers import Failed, Outcome, Workers

__all__ = ["DurableQueue", "Failed", "Job", "Outcome", "QueueStatus", "RedisLock", "Workers"]
