"""Ordering rules real AWS enforces on teardown and moto does not (notes/moto-5.2.5.md), checked
against the recorded call log of a run."""

from __future__ import annotations

from golive.aws import Call


def teardown_order_violations(calls: list[Call]) -> list[str]:
    problems = []
    position = {id(c): i for i, c in enumerate(calls)}
    def first(operation, **match):
        for c in calls:
            if c.operation == operation and all(c.params.get(k) == v for k, v in match.items()):
                return position[id(c)]
        return None
    def all_of(operation):
        return [c for c in calls if c.operation == operation]

    # A NAT gateway must be fully deleted before its Elastic IP is released or the gateway detached.
    for delete in all_of("DeleteNatGateway"):
        deleted_seen = next((i for i, c in enumerate(calls) if i > position[id(delete)]
                             and c.operation == "DescribeNatGateways"
                             and delete.params["NatGatewayId"] in c.params.get("NatGatewayIds", [])), None)
        if deleted_seen is None:
            problems.append(f"nobody waited for {delete.params['NatGatewayId']} to be deleted")
        for release in all_of("ReleaseAddress"):
            if position[id(release)] < (deleted_seen or position[id(delete)]):
                problems.append(f"ReleaseAddress {release.params['AllocationId']} before the NAT gateway was gone")
        for detach in all_of("DetachInternetGateway"):
            if position[id(detach)] < (deleted_seen or position[id(delete)]):
                problems.append("DetachInternetGateway while a NAT gateway still held a public address")
    # Every address released before the gateway is detached (mapped public addresses block detaching).
    for release in all_of("ReleaseAddress"):
        for detach in all_of("DetachInternetGateway"):
            if position[id(release)] > position[id(detach)]:
                problems.append("DetachInternetGateway before every Elastic IP was released")
    # A gateway is detached before it is deleted.
    for delete in all_of("DeleteInternetGateway"):
        detach = first("DetachInternetGateway", InternetGatewayId=delete.params["InternetGatewayId"])
        if detach is None or detach > position[id(delete)]:
            problems.append("DeleteInternetGateway before DetachInternetGateway")
    # A security group named in another group's rule cannot be deleted until that rule is revoked.
    deleted_groups = {c.params["GroupId"]: position[id(c)] for c in all_of("DeleteSecurityGroup")}
    for revoke in all_of("RevokeSecurityGroupIngress") + all_of("RevokeSecurityGroupEgress"):
        for permission in revoke.params.get("IpPermissions", []):
            for pair in permission.get("UserIdGroupPairs", []):
                if deleted_groups.get(pair["GroupId"], 1 << 30) < position[id(revoke)]:
                    problems.append(f"{pair['GroupId']} deleted while a rule still referenced it")
    # Route tables and ACLs are disassociated before deletion; subnets, gateways, groups before the VPC.
    for delete in all_of("DeleteRouteTable"):
        if not any(position[id(d)] < position[id(delete)] for d in all_of("DisassociateRouteTable")):
            problems.append(f"DeleteRouteTable {delete.params['RouteTableId']} with its associations")
    for delete_vpc in all_of("DeleteVpc"):
        for operation in ("DeleteSubnet", "DeleteInternetGateway", "DeleteSecurityGroup", "DeleteRouteTable",
                          "DeleteNetworkAcl", "DeleteNatGateway"):
            if any(position[id(c)] > position[id(delete_vpc)] for c in all_of(operation)):
                problems.append(f"{operation} after DeleteVpc")
    # Database and cache hold interfaces in the subnets and security groups: they go first, as do
    # replicas before their source, and instances before the groups they use.
    def last(operation):
        positions = [position[id(c)] for c in all_of(operation)]
        return max(positions) if positions else None
    for store_deletion in ("DeleteDBInstance", "DeleteReplicationGroup"):
        finished = last(store_deletion)
        for network_operation in ("DeleteSubnet", "DeleteSecurityGroup", "DeleteVpc", "DeleteDBSubnetGroup",
                                  "DeleteDBParameterGroup", "DeleteCacheSubnetGroup"):
            first_network = first(network_operation)
            if finished is not None and first_network is not None and first_network < finished:
                problems.append(f"{network_operation} before {store_deletion} was done")
    deleted_instances = [c.params["DBInstanceIdentifier"] for c in all_of("DeleteDBInstance")]
    for replica in (c for c in all_of("DeleteDBInstance") if c.params["DBInstanceIdentifier"].endswith("-replica")):
        source = replica.params["DBInstanceIdentifier"].removesuffix("-replica")
        if source in deleted_instances and deleted_instances.index(source) < deleted_instances.index(
                replica.params["DBInstanceIdentifier"]):
            problems.append(f"{source} deleted before its replica")
    # A role's policies go before the role.
    for delete in all_of("DeleteRole"):
        later = [c for c in all_of("DeleteRolePolicy") if c.params["RoleName"] == delete.params["RoleName"]
                 and position[id(c)] > position[id(delete)]]
        if later:
            problems.append(f"DeleteRole {delete.params['RoleName']} before its policies")
    problems += _containers_and_edge(calls, position, all_of, first, last)
    return problems


def _containers_and_edge(calls, position, all_of, first, last) -> list[str]:
    """Phases 2-4: ECS refuses to delete a service that runs tasks, or a cluster with ACTIVE services;
    ELB refuses a target group a listener still forwards to; CloudFront deletes only a disabled
    distribution with its current ETag; ACM keeps a certificate CloudFront or a listener still uses."""
    problems = []
    for delete in all_of("DeleteService"):
        scaled = [c for c in all_of("UpdateService") if c.params.get("service") == delete.params["service"]
                  and c.params.get("desiredCount") == 0 and position[id(c)] < position[id(delete)]]
        if not scaled:
            problems.append(f"DeleteService {delete.params['service']} before scaling it to 0")
    for delete in all_of("DeleteCluster"):
        if any(position[id(c)] > position[id(delete)] for c in all_of("DeleteService")):
            problems.append("DeleteCluster before its services were deleted")
        if not any(c.operation == "DescribeServices" and position[id(c)] < position[id(delete)] for c in calls):
            problems.append("DeleteCluster without waiting for its services to become INACTIVE")
    last_listener = last("DeleteListener")
    for delete in all_of("DeleteTargetGroup"):
        if last_listener is not None and position[id(delete)] < last_listener:
            problems.append("DeleteTargetGroup before every listener forwarding to it was deleted")
        if last("DeleteService") is not None and position[id(delete)] < last("DeleteService"):
            problems.append("DeleteTargetGroup while a service was still registered in it")
    for delete in all_of("DeleteDistribution"):
        disabled = [c for c in all_of("UpdateDistribution") if c.params.get("Id") == delete.params["Id"]
                    and c.params["DistributionConfig"]["Enabled"] is False and position[id(c)] < position[id(delete)]]
        if not disabled:
            problems.append(f"DeleteDistribution {delete.params['Id']} without disabling it first")
    for delete in all_of("DeleteCertificate"):
        for user in ("DeleteDistribution", "DeleteListener", "DeleteLoadBalancer"):
            if last(user) is not None and position[id(delete)] < last(user):
                problems.append(f"DeleteCertificate while still in use ({user} came later)")
    for delete in all_of("DeleteSecurityGroup"):
        if last("DeleteLoadBalancer") is not None and position[id(delete)] < last("DeleteLoadBalancer"):
            problems.append("DeleteSecurityGroup before the load balancer using it was deleted")
            break
    for delete in all_of("DeleteOriginAccessControl"):
        if last("DeleteDistribution") is not None and position[id(delete)] < last("DeleteDistribution"):
            problems.append("DeleteOriginAccessControl while a distribution still used it")
    return problems
