"""Plan section 1.2, network: VPC, subnets, internet and NAT gateways, route tables, security groups, NACLs.

Each resource is found by its environment/component tags, diffed against the environment file, and only
then changed. Creation tags in the same call, so a run killed between two calls leaves nothing unnamed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from botocore.exceptions import ClientError
from prefect import task

from golive.changes import Change, Record, known_after_apply
from golive.naming import ec2_filters, resource_name
from golive.resource import Ec2Resource, Found, ensure, owned_by, prune
from golive.retry import AWS_STEP, error_code
from golive.run import Run

ANYWHERE = "0.0.0.0/0"
EPHEMERAL = (1024, 65535)


# --- records later steps take as input -------------------------------------------------------------


class VpcRecord(Record):
    cidr_block: str


class SubnetRecord(Record):
    tier: str  # "public" or "private"
    availability_zone: str
    cidr_block: str


class NatGatewayRecord(Record):
    availability_zone: str
    address: Record  # its Elastic IP


class SecurityGroupRecord(Record):
    component: str


class NetworkRecord(Record):
    """All of section 1.2, for the phases that place things in the network."""

    vpc: VpcRecord
    public_subnets: list[SubnetRecord]
    private_subnets: list[SubnetRecord]
    internet_gateway: Record
    nat_gateways: list[NatGatewayRecord]
    route_tables: list[Record]
    security_groups: dict[str, SecurityGroupRecord]
    network_acls: list[Record]


def zone_letter(availability_zone: str) -> str:
    return availability_zone[-1]


# --- VPC -------------------------------------------------------------------------------------------


class Vpc(Ec2Resource):
    kind = "vpc"
    describe_operation, result_key, id_key = "describe_vpcs", "Vpcs", "VpcId"
    replace_on = frozenset({"cidr_block"})

    def desired(self) -> dict[str, Any]:
        return {"cidr_block": self.run.environment.network.vpc_cidr, "dns_support": True, "dns_hostnames": True}

    def observe(self, item: dict) -> dict[str, Any]:
        attribute = lambda name, key: self.ec2.describe_vpc_attribute(VpcId=item["VpcId"], Attribute=name)[
            key
        ]["Value"]
        return {
            "cidr_block": item["CidrBlock"],
            "dns_support": attribute("enableDnsSupport", "EnableDnsSupport"),
            "dns_hostnames": attribute("enableDnsHostnames", "EnableDnsHostnames"),
        }

    def create(self) -> str:
        vpc_id = self.ec2_once.create_vpc(
            CidrBlock=self.desired()["cidr_block"], TagSpecifications=self.tag_specifications("vpc")
        )["Vpc"]["VpcId"]
        # Eventually consistent: 'exists' tolerates NotFound, 'available' does not.
        self.ec2.get_waiter("vpc_exists").wait(VpcIds=[vpc_id], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        self.ec2.get_waiter("vpc_available").wait(VpcIds=[vpc_id], WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        self._set_dns(vpc_id, support=True, hostnames=True)
        return vpc_id

    def update(self, found: Found, changes) -> None:
        desired = self.desired()
        self._set_dns(found.id, support=desired["dns_support"], hostnames=desired["dns_hostnames"])

    def _set_dns(self, vpc_id: str, *, support: bool, hostnames: bool) -> None:
        # One attribute per call is all the API allows; support must be on before hostnames.
        self.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": support})
        self.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": hostnames})

    def delete(self, found: Found) -> None:
        self.ec2.delete_vpc(VpcId=found.id)


@task(**AWS_STEP)
def ensure_vpc(run: Run) -> VpcRecord:
    """Create the VPC with DNS support and hostnames (RDS and service discovery need both)."""
    outcome = ensure(Vpc(run, "vpc"))
    return VpcRecord(
        name=resource_name(run.env_name, "vpc"),
        id=outcome.id,
        change=outcome.change,
        cidr_block=run.environment.network.vpc_cidr,
    )


# --- subnets ---------------------------------------------------------------------------------------


class Subnet(Ec2Resource):
    kind = "subnet"
    describe_operation, result_key, id_key = "describe_subnets", "Subnets", "SubnetId"
    replace_on = frozenset({"vpc_id", "cidr_block", "availability_zone"})

    def __init__(self, run: Run, component: str, vpc_id: str | None = None, az: str = "", cidr: str = ""):
        super().__init__(run, component)
        self.vpc_id, self.az, self.cidr = vpc_id, az, cidr

    def desired(self) -> dict[str, Any]:
        # Nothing gets a public IP by itself: the ALB and NAT gateways bring their own addresses.
        return {"vpc_id": known_after_apply(self.vpc_id), "cidr_block": self.cidr, "availability_zone": self.az,
                "map_public_ip_on_launch": False}

    def observe(self, item: dict) -> dict[str, Any]:
        return {"vpc_id": item["VpcId"], "cidr_block": item["CidrBlock"],
                "availability_zone": item["AvailabilityZone"],
                "map_public_ip_on_launch": item.get("MapPublicIpOnLaunch", False)}

    def untagged_filters(self) -> list[dict] | None:
        # A CIDR block is unique within its VPC: the subnet is found by it with every tag removed.
        return [{"Name": "vpc-id", "Values": [self.vpc_id]}, {"Name": "cidr-block", "Values": [self.cidr]}] \
            if self.vpc_id and self.cidr else None

    def create(self) -> str:
        subnet_id = self.ec2.create_subnet(
            VpcId=self.vpc_id, CidrBlock=self.cidr, AvailabilityZone=self.az,
            TagSpecifications=self.tag_specifications("subnet"),
        )["Subnet"]["SubnetId"]
        self.ec2.get_waiter("subnet_available").wait(
            SubnetIds=[subnet_id], WaiterConfig={"Delay": 2, "MaxAttempts": 60}
        )
        return subnet_id

    def update(self, found: Found, changes) -> None:
        self.ec2.modify_subnet_attribute(SubnetId=found.id, MapPublicIpOnLaunch={"Value": False})

    def delete(self, found: Found) -> None:
        self.ec2.delete_subnet(SubnetId=found.id)


@task(**AWS_STEP)
def ensure_subnet(run: Run, vpc: VpcRecord, tier: str, availability_zone: str, cidr: str) -> SubnetRecord:
    """Create one public or private subnet in one availability zone."""
    component = f"{tier}-{zone_letter(availability_zone)}"
    outcome = ensure(Subnet(run, component, vpc.id, availability_zone, cidr))
    return SubnetRecord(
        name=resource_name(run.env_name, component), id=outcome.id, change=outcome.change,
        tier=tier, availability_zone=availability_zone, cidr_block=cidr,
    )


# --- internet gateway ------------------------------------------------------------------------------


class InternetGateway(Ec2Resource):
    kind = "internet-gateway"
    describe_operation, result_key, id_key = "describe_internet_gateways", "InternetGateways", "InternetGatewayId"

    def __init__(self, run: Run, component: str, vpc_id: str | None = None):
        super().__init__(run, component)
        self.vpc_id = vpc_id

    def desired(self) -> dict[str, Any]:
        return {"attached_to": known_after_apply(self.vpc_id)}

    def observe(self, item: dict) -> dict[str, Any]:
        attached = [a["VpcId"] for a in item.get("Attachments", []) if a.get("State") in ("attached", "available")]
        return {"attached_to": attached[0] if attached else None}

    def untagged_filters(self) -> list[dict] | None:
        # A VPC takes one internet gateway: the one attached to ours is ours, tagged or not.
        return [{"Name": "attachment.vpc-id", "Values": [self.vpc_id]}] if self.vpc_id else None

    def create(self) -> str:
        gateway_id = self.ec2_once.create_internet_gateway(
            TagSpecifications=self.tag_specifications("internet-gateway")
        )["InternetGateway"]["InternetGatewayId"]
        self.ec2.get_waiter("internet_gateway_exists").wait(
            InternetGatewayIds=[gateway_id], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        self.ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=self.vpc_id)
        return gateway_id

    def update(self, found: Found, changes) -> None:
        self._detach(found)
        self.ec2.attach_internet_gateway(InternetGatewayId=found.id, VpcId=self.vpc_id)

    def _detach(self, found: Found) -> None:
        for attachment in found.raw.get("Attachments", []):
            self.ec2.detach_internet_gateway(InternetGatewayId=found.id, VpcId=attachment["VpcId"])

    def delete(self, found: Found) -> None:
        self._detach(found)
        self.ec2.delete_internet_gateway(InternetGatewayId=found.id)


@task(**AWS_STEP)
def ensure_internet_gateway(run: Run, vpc: VpcRecord) -> Record:
    """Create the internet gateway and attach it to the VPC (the public subnets' way out)."""
    outcome = ensure(InternetGateway(run, "igw", vpc.id))
    return Record(name=resource_name(run.env_name, "igw"), id=outcome.id, change=outcome.change)


# --- Elastic IPs and NAT gateways ------------------------------------------------------------------


class ElasticIp(Ec2Resource):
    kind = "elastic-ip"
    describe_operation, result_key, id_key = "describe_addresses", "Addresses", "AllocationId"

    def desired(self) -> dict[str, Any]:
        return {"domain": "vpc"}

    def observe(self, item: dict) -> dict[str, Any]:
        return {"domain": item.get("Domain")}

    def create(self) -> str:
        return self.ec2_once.allocate_address(
            Domain="vpc", TagSpecifications=self.tag_specifications("elastic-ip")
        )["AllocationId"]

    # Right after its NAT gateway is deleted, AWS can still refuse to release the address with these.
    STILL_IN_USE: ClassVar[frozenset[str]] = frozenset({"AuthFailure", "InvalidIPAddress.InUse"})

    def delete(self, found: Found) -> None:
        # Retry the release itself, within the NAT gateway's bound: the address's association can
        # outlive the gateway (and moto never clears it, so it cannot be waited for by describing).
        deadline = time.monotonic() + self.run.environment.network.nat_wait_minutes * 60
        while True:
            try:
                self.ec2.release_address(AllocationId=found.id)
                return
            except ClientError as error:
                if error_code(error) not in self.STILL_IN_USE or time.monotonic() > deadline:
                    raise
            time.sleep(self.run.poll_delay(5))


class NatGateway(Ec2Resource):
    kind = "nat-gateway"
    describe_operation, result_key, id_key = "describe_nat_gateways", "NatGateways", "NatGatewayId"
    replace_on = frozenset({"subnet_id", "allocation_id"})
    GONE: ClassVar[frozenset[str]] = frozenset({"deleted", "failed"})

    def __init__(self, run: Run, component: str, subnet_id: str | None = None, allocation_id: str | None = None):
        super().__init__(run, component)
        self.subnet_id, self.allocation_id = subnet_id, allocation_id

    @classmethod
    def is_live(cls, item: dict) -> bool:
        return item.get("State") not in cls.GONE | {"deleting"}

    @classmethod
    def is_gone(cls, item: dict) -> bool:
        return item.get("State") in cls.GONE

    @classmethod
    def _describe_owned(cls, run: Run, component: str | None) -> list[dict]:
        # describe_nat_gateways spells its filter parameter "Filter", unlike the rest of EC2.
        items: list[dict] = []
        paginator = run.client("ec2").get_paginator("describe_nat_gateways")
        for page in paginator.paginate(Filter=ec2_filters(run.env_name, component)):
            items.extend(page["NatGateways"])
        return [item for item in items if owned_by(item, run.env_name, component)]

    def desired(self) -> dict[str, Any]:
        return {"subnet_id": known_after_apply(self.subnet_id), "allocation_id": known_after_apply(self.allocation_id)}

    def observe(self, item: dict) -> dict[str, Any]:
        addresses = item.get("NatGatewayAddresses", [])
        return {"subnet_id": item["SubnetId"], "allocation_id": addresses[0]["AllocationId"] if addresses else None}

    def _waiter_config(self) -> dict:
        return self.run.waiter(15, self.run.environment.network.nat_wait_minutes)

    def create(self) -> str:
        nat_id = self.ec2.create_nat_gateway(
            SubnetId=self.subnet_id, AllocationId=self.allocation_id, ConnectivityType="public",
            TagSpecifications=self.tag_specifications("natgateway"),
        )["NatGateway"]["NatGatewayId"]
        self.ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat_id], WaiterConfig=self._waiter_config())
        return nat_id

    def settle(self, found: Found) -> Found:
        if found.raw.get("State") != "pending":
            return found
        self.ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[found.id], WaiterConfig=self._waiter_config())
        return self.discover() or found

    def delete(self, found: Found) -> None:
        # Its Elastic IP and the internet gateway stay in use until the NAT gateway is fully deleted.
        # One already 'deleting' (a killed teardown) is only waited for.
        if found.raw.get("State") != "deleting":
            self.ec2.delete_nat_gateway(NatGatewayId=found.id)
        self.ec2.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[found.id], WaiterConfig=self._waiter_config())


@task(**AWS_STEP)
def ensure_nat_gateway(run: Run, subnet: SubnetRecord, internet_gateway: Record) -> NatGatewayRecord:
    """Allocate an Elastic IP and create a NAT gateway in a public subnet, for the private subnets' egress.

    Takes the internet gateway so it only runs once that is attached: AWS refuses a public NAT gateway
    in a VPC without one.
    """
    letter = zone_letter(subnet.availability_zone)
    address = ensure(ElasticIp(run, f"nat-eip-{letter}"))
    nat = ensure(NatGateway(run, f"nat-{letter}", subnet.id, address.id))
    return NatGatewayRecord(
        name=resource_name(run.env_name, f"nat-{letter}"), id=nat.id, change=nat.change,
        availability_zone=subnet.availability_zone,
        address=Record(name=resource_name(run.env_name, f"nat-eip-{letter}"), id=address.id, change=address.change),
    )


@task(**AWS_STEP)
def prune_nat_gateways(run: Run, kept: list[NatGatewayRecord], route_tables: list[Record]) -> list[Change]:
    """Remove NAT gateways and addresses the file no longer asks for (per-AZ back to single).

    Takes the route tables so it runs only once no route points at what it deletes.
    """
    letters = {zone_letter(nat.availability_zone) for nat in kept}
    return (prune(NatGateway, run, {f"nat-{letter}" for letter in letters})
            + prune(ElasticIp, run, {f"nat-eip-{letter}" for letter in letters}))


# --- route tables ----------------------------------------------------------------------------------


class RouteTable(Ec2Resource):
    kind = "route-table"
    describe_operation, result_key, id_key = "describe_route_tables", "RouteTables", "RouteTableId"
    replace_on = frozenset({"vpc_id"})

    def __init__(self, run: Run, component: str, vpc_id: str | None = None,
                 default_route_via: str | None = None, subnet_ids: list[str | None] = ()):
        super().__init__(run, component)
        self.vpc_id, self.via, self.subnet_ids = vpc_id, default_route_via, list(subnet_ids)

    def desired(self) -> dict[str, Any]:
        return {"vpc_id": known_after_apply(self.vpc_id), "routes": [f"{ANYWHERE} via {known_after_apply(self.via)}"],
                "subnets": sorted(known_after_apply(s) for s in self.subnet_ids)}

    def observe(self, item: dict) -> dict[str, Any]:
        # Only the default route is ours: routes others add (peering, VPN propagation) are left alone,
        # so they neither show as drift nor cause a write on every run.
        routes = [
            f"{r['DestinationCidrBlock']} via {r.get('NatGatewayId') or r.get('GatewayId')}"
            for r in item.get("Routes", [])
            if r.get("DestinationCidrBlock") == ANYWHERE
        ]
        subnets = [a["SubnetId"] for a in item.get("Associations", []) if a.get("SubnetId") and not a.get("Main")]
        return {"vpc_id": item["VpcId"], "routes": sorted(routes), "subnets": sorted(subnets)}

    def _route_target(self) -> dict[str, str]:
        return {"NatGatewayId": self.via} if self.via.startswith("nat-") else {"GatewayId": self.via}

    def create(self) -> str:
        table_id = self.ec2.create_route_table(
            VpcId=self.vpc_id, TagSpecifications=self.tag_specifications("route-table")
        )["RouteTable"]["RouteTableId"]
        self.ec2.create_route(RouteTableId=table_id, DestinationCidrBlock=ANYWHERE, **self._route_target())
        for subnet_id in self.subnet_ids:
            self._associate(table_id, subnet_id)
        return table_id

    def _associate(self, table_id: str, subnet_id: str) -> None:
        # A subnet has one explicit route table: move an existing association rather than add a second.
        current = self.ec2.describe_route_tables(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
        )["RouteTables"]
        for table in current:
            for association in table.get("Associations", []):
                if association.get("SubnetId") == subnet_id:
                    self.ec2.replace_route_table_association(
                        AssociationId=association["RouteTableAssociationId"], RouteTableId=table_id
                    )
                    return
        self.ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)

    def update(self, found: Found, changes) -> None:
        if "routes" in changes:
            has_default = any(r.get("DestinationCidrBlock") == ANYWHERE for r in found.raw.get("Routes", []))
            call = self.ec2.replace_route if has_default else self.ec2.create_route
            call(RouteTableId=found.id, DestinationCidrBlock=ANYWHERE, **self._route_target())
        if "subnets" in changes:
            wanted = set(self.subnet_ids)
            for association in found.raw.get("Associations", []):
                if association.get("SubnetId") and not association.get("Main") and association["SubnetId"] not in wanted:
                    self.ec2.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])
            for subnet_id in wanted - set(found.state["subnets"]):
                self._associate(found.id, subnet_id)

    def delete(self, found: Found) -> None:
        for association in found.raw.get("Associations", []):
            if not association.get("Main") and association.get("RouteTableAssociationId"):
                self.ec2.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])
        self.ec2.delete_route_table(RouteTableId=found.id)


@task(**AWS_STEP)
def ensure_route_table(run: Run, component: str, vpc: VpcRecord, default_route_via: Record,
                       subnets: list[SubnetRecord]) -> Record:
    """A route table whose default route leaves through the given gateway, associated with the subnets."""
    outcome = ensure(RouteTable(run, component, vpc.id, default_route_via.id, [s.id for s in subnets]))
    return Record(name=resource_name(run.env_name, component), id=outcome.id, change=outcome.change)


# --- security groups -------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Rule:
    """One security group rule in a readable form: 'tcp 443 0.0.0.0/0' or 'tcp 5432 sg:backend'."""

    protocol: str  # "tcp", "udp" or "all"
    from_port: int | None
    to_port: int | None
    peer: str  # a CIDR, or "sg:<component>" for another group of this environment

    def __str__(self) -> str:
        if self.protocol == "all":
            return f"all {self.peer}"
        ports = str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"
        return f"{self.protocol} {ports} {self.peer}"


def tcp(port: int, peer: str) -> Rule:
    return Rule("tcp", port, port, peer)


class SecurityGroup(Ec2Resource):
    """A security group and its rules. Rules naming other groups use their component names, so the
    plan reads 'tcp 5432 sg:backend' and the groups can be created in dependency order."""

    kind = "security-group"
    describe_operation, result_key, id_key = "describe_security_groups", "SecurityGroups", "GroupId"
    replace_on = frozenset({"vpc_id", "description"})

    def __init__(self, run: Run, component: str, vpc_id: str | None = None, description: str = "",
                 ingress: list[Rule] = (), egress: list[Rule] = (), known_ids: dict[str, str | None] | None = None):
        super().__init__(run, component)
        self.vpc_id, self.description = vpc_id, description
        self.ingress, self.egress = list(ingress), list(egress)
        # component -> id of the environment's groups, read once by the task and extended as it creates
        # them (a describe straight after a create may not show a new group yet). None: describe.
        self.known_ids = known_ids

    def desired(self) -> dict[str, Any]:
        return {"vpc_id": known_after_apply(self.vpc_id), "description": self.description,
                "ingress": sorted(str(r) for r in self.ingress), "egress": sorted(str(r) for r in self.egress)}

    def untagged_filters(self) -> list[dict] | None:
        # Its GroupName is its deterministic name, in its VPC: found even with every tag removed.
        filters = [{"Name": "group-name", "Values": [self.name]}]
        return filters + [{"Name": "vpc-id", "Values": [self.vpc_id]}] if self.vpc_id else filters

    def _group_ids(self) -> dict[str, str]:
        """component -> group id for this environment's groups (to resolve 'sg:<component>' peers)."""
        if self.known_ids is not None:
            return {k: v for k, v in self.known_ids.items() if v}
        return {found.component: found.id for found in self.discover_all(self.run)}

    def observe(self, item: dict) -> dict[str, Any]:
        names = {group_id: component for component, group_id in self._group_ids().items()}
        return {"vpc_id": item["VpcId"], "description": item["Description"],
                "ingress": sorted(str(r) for r in _rules(item.get("IpPermissions", []), names)),
                "egress": sorted(str(r) for r in _rules(item.get("IpPermissionsEgress", []), names))}

    def create(self) -> str:
        group_id = self.ec2.create_security_group(
            GroupName=self.name, Description=self.description, VpcId=self.vpc_id,
            TagSpecifications=self.tag_specifications("security-group"),
        )["GroupId"]
        # New groups allow all egress; replace that with what this group needs.
        self._set_rules(group_id, "egress", current=[Rule("all", None, None, ANYWHERE)], wanted=self.egress)
        self._set_rules(group_id, "ingress", current=[], wanted=self.ingress)
        return group_id

    def update(self, found: Found, changes) -> None:
        names = {group_id: component for component, group_id in self._group_ids().items()}
        for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
            if direction in changes:
                current = _rules(found.raw.get(key, []), names)
                self._set_rules(found.id, direction, current=current, wanted=getattr(self, direction))

    def _set_rules(self, group_id: str, direction: str, current: list[Rule], wanted: list[Rule]) -> None:
        ids = self._group_ids()
        revoke = [r for r in current if r not in wanted]
        add = [r for r in wanted if r not in current]
        authorize = getattr(self.ec2, f"authorize_security_group_{direction}")
        revoke_call = getattr(self.ec2, f"revoke_security_group_{direction}")
        if revoke:
            revoke_call(GroupId=group_id, IpPermissions=[_permission(r, ids) for r in revoke])
        if add:
            authorize(GroupId=group_id, IpPermissions=[_permission(r, ids) for r in add])

    @classmethod
    def before_teardown(cls, run: Run, found: list[Found]) -> None:
        # AWS refuses to delete a group another group's rule still names: revoke those rules first.
        ec2 = run.client("ec2")
        for group in found:
            for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
                referencing = [p for p in group.raw.get(key, []) if p.get("UserIdGroupPairs")]
                if referencing:
                    revoke = getattr(ec2, f"revoke_security_group_{direction}")
                    revoke(GroupId=group.id, IpPermissions=[
                        {k: v for k, v in p.items() if k in ("IpProtocol", "FromPort", "ToPort", "UserIdGroupPairs")}
                        for p in referencing
                    ])

    def delete(self, found: Found) -> None:
        self.ec2.delete_security_group(GroupId=found.id)


def _rules(permissions: list[dict], names_by_id: dict[str, str]) -> list[Rule]:
    rules = []
    for permission in permissions:
        protocol = "all" if permission["IpProtocol"] == "-1" else permission["IpProtocol"]
        ports = (None, None) if protocol == "all" else (permission.get("FromPort"), permission.get("ToPort"))
        # Every kind of peer, so that access added by hand (IPv6, a prefix list) shows up as drift.
        for ip_range in permission.get("IpRanges", []):
            rules.append(Rule(protocol, *ports, ip_range["CidrIp"]))
        for ip_range in permission.get("Ipv6Ranges", []):
            rules.append(Rule(protocol, *ports, ip_range["CidrIpv6"]))
        for prefix_list in permission.get("PrefixListIds", []):
            rules.append(Rule(protocol, *ports, prefix_list["PrefixListId"]))
        for pair in permission.get("UserIdGroupPairs", []):
            rules.append(Rule(protocol, *ports, f"sg:{names_by_id.get(pair['GroupId'], pair['GroupId'])}"))
    return sorted(rules)


def _permission(rule: Rule, group_ids: dict[str, str]) -> dict:
    permission: dict[str, Any] = {"IpProtocol": "-1" if rule.protocol == "all" else rule.protocol}
    if rule.protocol != "all":
        permission.update(FromPort=rule.from_port, ToPort=rule.to_port)
    if rule.peer.startswith("sg:"):
        component = rule.peer[3:]
        group_id = group_ids.get(component) or (component if component.startswith("sg-") else None)
        if group_id is None:
            raise LookupError(f"security group rule {rule} names group {component!r}, which does not exist yet")
        permission["UserIdGroupPairs"] = [{"GroupId": group_id}]
    elif rule.peer.startswith("pl-"):
        permission["PrefixListIds"] = [{"PrefixListId": rule.peer}]
    elif ":" in rule.peer:
        permission["Ipv6Ranges"] = [{"CidrIpv6": rule.peer}]
    else:
        permission["IpRanges"] = [{"CidrIp": rule.peer}]
    return permission


CLOUDFRONT_PREFIX_LIST = "com.amazonaws.global.cloudfront.origin-facing"


def cloudfront_prefix_list(run: Run) -> str:
    """The id of the AWS-managed prefix list of CloudFront's origin-facing addresses in this region."""
    lists = run.client("ec2").describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": [CLOUDFRONT_PREFIX_LIST]}])["PrefixLists"]
    if not lists:
        raise LookupError(f"no managed prefix list {CLOUDFRONT_PREFIX_LIST} in {run.environment.region}")
    return lists[0]["PrefixListId"]


def security_group_specs(run: Run) -> list[tuple[str, str, list[Rule], list[Rule]]]:
    """(component, description, ingress, egress) in creation order: a group's peers come before it.

    Least privilege: only the ALB is reachable from the internet; the services only from the ALB; the
    database and cache only from the backend, and they need no egress at all.
    """
    env = run.environment
    backend, frontend, vpc_cidr = env.services.backend.port, env.services.frontend.port, env.network.vpc_cidr
    return [
        # HTTPS from CloudFront's origin-facing addresses only (CloudFront reaches the ALB over HTTPS
        # only). One rule: the prefix list counts as 55 rules against the group's quota of 60.
        ("alb", "Application load balancer: HTTPS from CloudFront only",
         [tcp(443, cloudfront_prefix_list(run))], [tcp(backend, vpc_cidr), tcp(frontend, vpc_cidr)]),
        ("backend", "Django backend tasks: from the ALB only", [tcp(backend, "sg:alb")], [Rule("all", None, None, ANYWHERE)]),
        ("frontend", "Frontend tasks: from the ALB only", [tcp(frontend, "sg:alb")], [Rule("all", None, None, ANYWHERE)]),
        ("database", "PostgreSQL: from the backend only", [tcp(5432, "sg:backend")], []),
        ("cache", "Redis: from the backend only", [tcp(6379, "sg:backend")], []),
    ]


@task(**AWS_STEP)
def ensure_security_groups(run: Run, vpc: VpcRecord) -> dict[str, SecurityGroupRecord]:
    """The five security groups, least privilege, in dependency order."""
    records = {}
    ids: dict[str, str | None] = {found.component: found.id for found in SecurityGroup.discover_all(run)}
    for component, description, ingress, egress in security_group_specs(run):
        outcome = ensure(SecurityGroup(run, component, vpc.id, description, ingress, egress, ids))
        ids[component] = outcome.id
        records[component] = SecurityGroupRecord(
            name=resource_name(run.env_name, component), id=outcome.id, change=outcome.change, component=component
        )
    return records


# --- network ACLs ----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class AclEntry:
    direction: str  # "in" or "out"
    number: int
    protocol: str  # "tcp" or "all"
    from_port: int | None
    to_port: int | None
    cidr: str

    def __str__(self) -> str:
        ports = "" if self.protocol == "all" else f" {self.from_port}-{self.to_port}"
        return f"{self.direction} {self.number} allow {self.protocol}{ports} {self.cidr}"


def acl_entries(run: Run, tier: str) -> list[AclEntry]:
    """Stateless rules, so return traffic needs the ephemeral ports. Deny is the implicit last rule."""
    vpc = run.environment.network.vpc_cidr
    if tier == "public":
        inbound = [AclEntry("in", 100, "tcp", 80, 80, ANYWHERE), AclEntry("in", 110, "tcp", 443, 443, ANYWHERE),
                   AclEntry("in", 120, "tcp", *EPHEMERAL, ANYWHERE), AclEntry("in", 130, "all", None, None, vpc)]
    else:
        inbound = [AclEntry("in", 100, "all", None, None, vpc), AclEntry("in", 110, "tcp", *EPHEMERAL, ANYWHERE)]
    return inbound + [AclEntry("out", 100, "all", None, None, ANYWHERE)]


class NetworkAcl(Ec2Resource):
    kind = "network-acl"
    describe_operation, result_key, id_key = "describe_network_acls", "NetworkAcls", "NetworkAclId"
    replace_on = frozenset({"vpc_id"})

    def __init__(self, run: Run, component: str, vpc_id: str | None = None, entries: list[AclEntry] = (),
                 subnet_ids: list[str | None] = ()):
        super().__init__(run, component)
        self.vpc_id, self.entries, self.subnet_ids = vpc_id, list(entries), list(subnet_ids)

    def desired(self) -> dict[str, Any]:
        return {"vpc_id": known_after_apply(self.vpc_id), "entries": sorted(str(e) for e in self.entries),
                "subnets": sorted(known_after_apply(s) for s in self.subnet_ids)}

    def observe(self, item: dict) -> dict[str, Any]:
        return {"vpc_id": item["VpcId"], "entries": sorted(str(e) for e in _acl_entries(item)),
                "subnets": sorted(a["SubnetId"] for a in item.get("Associations", []))}

    def create(self) -> str:
        acl_id = self.ec2.create_network_acl(
            VpcId=self.vpc_id, TagSpecifications=self.tag_specifications("network-acl")
        )["NetworkAcl"]["NetworkAclId"]
        for entry in self.entries:
            self._write_entry(acl_id, entry)
        for subnet_id in self.subnet_ids:
            self._move_subnet(subnet_id, acl_id)
        return acl_id

    def _write_entry(self, acl_id: str, entry: AclEntry, replace: bool = False) -> None:
        kwargs: dict[str, Any] = dict(
            NetworkAclId=acl_id, RuleNumber=entry.number, Egress=entry.direction == "out",
            Protocol="-1" if entry.protocol == "all" else "6", RuleAction="allow", CidrBlock=entry.cidr,
        )
        if entry.protocol != "all":
            kwargs["PortRange"] = {"From": entry.from_port, "To": entry.to_port}
        (self.ec2.replace_network_acl_entry if replace else self.ec2.create_network_acl_entry)(**kwargs)

    def _move_subnet(self, subnet_id: str, acl_id: str) -> None:
        # Every subnet is always associated with exactly one ACL: replace, never add.
        current = self.ec2.describe_network_acls(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
        )["NetworkAcls"]
        for acl in current:
            for association in acl.get("Associations", []):
                if association["SubnetId"] == subnet_id and acl["NetworkAclId"] != acl_id:
                    self.ec2.replace_network_acl_association(
                        AssociationId=association["NetworkAclAssociationId"], NetworkAclId=acl_id
                    )

    def update(self, found: Found, changes) -> None:
        if "entries" in changes:
            current = {(e.direction, e.number): e for e in _acl_entries(found.raw)}
            wanted = {(e.direction, e.number): e for e in self.entries}
            # A changed rule is replaced in place: deleting then creating would deny its traffic meanwhile.
            for key, entry in wanted.items():
                if key in current and current[key] != entry:
                    self._write_entry(found.id, entry, replace=True)
                elif key not in current:
                    self._write_entry(found.id, entry)
            for key, entry in current.items():
                if key not in wanted:
                    self.ec2.delete_network_acl_entry(NetworkAclId=found.id, RuleNumber=entry.number,
                                                      Egress=entry.direction == "out")
        if "subnets" in changes:
            for subnet_id in set(self.subnet_ids) - set(found.state["subnets"]):
                self._move_subnet(subnet_id, found.id)

    def delete(self, found: Found) -> None:
        # Subnets go back to the VPC's default ACL first; an associated ACL cannot be deleted.
        associations = found.raw.get("Associations", [])
        if associations:
            default = self.ec2.describe_network_acls(Filters=[
                {"Name": "vpc-id", "Values": [found.raw["VpcId"]]}, {"Name": "default", "Values": ["true"]},
            ])["NetworkAcls"][0]["NetworkAclId"]
            for association in associations:
                self.ec2.replace_network_acl_association(
                    AssociationId=association["NetworkAclAssociationId"], NetworkAclId=default
                )
        self.ec2.delete_network_acl(NetworkAclId=found.id)


def _acl_entries(item: dict) -> list[AclEntry]:
    entries = []
    for e in item.get("Entries", []):
        if e["RuleNumber"] == 32767 or e.get("RuleAction") != "allow" or "CidrBlock" not in e:
            continue
        protocol = "all" if e["Protocol"] == "-1" else {"6": "tcp", "17": "udp"}.get(e["Protocol"], e["Protocol"])
        ports = (e.get("PortRange", {}).get("From"), e.get("PortRange", {}).get("To")) if protocol != "all" else (None, None)
        entries.append(AclEntry("out" if e["Egress"] else "in", e["RuleNumber"], protocol, *ports, e["CidrBlock"]))
    return entries


@task(**AWS_STEP)
def ensure_network_acl(run: Run, tier: str, vpc: VpcRecord, subnets: list[SubnetRecord]) -> Record:
    """A network ACL for one tier of subnets: a second, stateless fence behind the security groups."""
    outcome = ensure(NetworkAcl(run, f"{tier}-acl", vpc.id, acl_entries(run, tier), [s.id for s in subnets]))
    return Record(name=resource_name(run.env_name, f"{tier}-acl"), id=outcome.id, change=outcome.change)


# Teardown walks this backwards-safe order: what holds an address or an interface goes first.
TEARDOWN_ORDER: list[type[Ec2Resource]] = [
    NatGateway, ElasticIp, SecurityGroup, RouteTable, NetworkAcl, InternetGateway, Subnet, Vpc,
]
