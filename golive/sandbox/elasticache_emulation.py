"""The sandbox's ElastiCache finishes what it starts: moto 5.2.5 has no DeleteCacheSubnetGroup (HTTP 500)
and leaves a deleted replication group 'deleting' forever, so a destroyed environment kept its cache
subnet group (with the subnets of a VPC that no longer exists) and its replication group's name, and the
next apply failed on them.

Installed in the sandbox's moto process, this module deletes cache subnet groups as AWS does (refused
with CacheSubnetGroupInUse while a replication group still uses one) and ends a replication group's
deletion: the first describe after DeleteReplicationGroup still reports it 'deleting' (a waiter sees
the state AWS reports for minutes), the next ones no longer find it.
"""

from __future__ import annotations

import time

# AWS takes minutes; the emulator ends a deletion this long after it began (a waiter polls every second).
DELETION_SECONDS = 0.5


def install() -> None:
    from moto.core.responses import EmptyResult
    from moto.elasticache.exceptions import CacheSubnetGroupNotFound, ElastiCacheException
    from moto.elasticache.models import ElastiCacheBackend
    from moto.elasticache.responses import ElastiCacheResponse

    class CacheSubnetGroupInUse(ElastiCacheException):
        code = "CacheSubnetGroupInUse"

    deletions: dict[tuple[int, str], float] = {}  # (backend, replication group id) -> when deletion began
    original_delete = ElastiCacheBackend.delete_replication_group
    original_describe = ElastiCacheBackend.describe_replication_groups

    def finish_deletions(backend: ElastiCacheBackend) -> None:
        now = time.monotonic()
        for group_id, group in list(backend.replication_groups.items()):
            began = deletions.get((id(backend), group_id))
            if group.status == "deleting" and began is not None and now - began >= DELETION_SECONDS:
                del backend.replication_groups[group_id]
                deletions.pop((id(backend), group_id), None)
                backend.tagging_service.delete_all_tags_for_resource(group.arn)

    def delete_replication_group(self, replication_group_id, retain_primary_cluster):
        group = original_delete(self, replication_group_id, retain_primary_cluster)
        deletions.setdefault((id(self), replication_group_id), time.monotonic())
        return group

    def describe_replication_groups(self, replication_group_id=None):
        finish_deletions(self)
        return original_describe(self, replication_group_id)

    def delete_cache_subnet_group(self, cache_subnet_group_name: str) -> None:
        finish_deletions(self)
        if cache_subnet_group_name not in self.cache_subnet_groups:
            raise CacheSubnetGroupNotFound(cache_subnet_group_name)
        users = [g for g in self.replication_groups.values()
                 if getattr(g, "cache_subnet_group_name", None) == cache_subnet_group_name]
        if users:
            raise CacheSubnetGroupInUse(f"Cache subnet group {cache_subnet_group_name} is currently in use by a "
                                        f"replication group ({users[0].replication_group_id}).")
        group = self.cache_subnet_groups.pop(cache_subnet_group_name)
        self.tagging_service.delete_all_tags_for_resource(group.arn)

    def delete_cache_subnet_group_response(self):
        self.elasticache_backend.delete_cache_subnet_group(self._get_param("CacheSubnetGroupName"))
        return EmptyResult()

    ElastiCacheBackend.delete_replication_group = delete_replication_group
    ElastiCacheBackend.describe_replication_groups = describe_replication_groups
    ElastiCacheBackend.delete_cache_subnet_group = delete_cache_subnet_group
    ElastiCacheResponse.delete_cache_subnet_group = delete_cache_subnet_group_response
