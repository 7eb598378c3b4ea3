"""The built-in feature managers wired together for the server core.

:func:`create_features` builds the channel, room, presence and record managers around one
:class:`~mesh_server.features.ServerCore`, sharing what must be shared: the reference-counted
backend pub/sub subscriptions, the per-connection subscription quota (§15) and the local room
memberships presence refreshes use (§10.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mesh_server.channels import ChannelManager
from mesh_server.exposure import SubscriptionQuota
from mesh_server.presence import LocalMemberships, PresenceManager
from mesh_server.records import RecordManager
from mesh_server.rooms import RoomManager
from mesh_server.subscribers import BackendChannels

if TYPE_CHECKING:
    from mesh_server.features import Feature, ServerCore

__all__ = ["FeatureSet", "create_features"]


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """The built-in managers; ``all`` lists them in the order the core should call hooks.

    Attributes:
        channels: Application channels and history (§9).
        rooms: Room membership and room metadata (§10.1, §12.2).
        presence: Presence tracking, subscriptions and state (§10.2–§10.5).
        records: Records (§11).
        quota: The shared per-connection subscription count (§15).
        all: Every manager, as :class:`~mesh_server.features.Feature`.
    """

    channels: ChannelManager
    rooms: RoomManager
    presence: PresenceManager
    records: RecordManager
    quota: SubscriptionQuota
    all: list[Feature] = field(default_factory=list)


def create_features(core: ServerCore, *, presence_sweep_interval: float = 1.0) -> FeatureSet:
    """Build the built-in feature managers for ``core``.

    Args:
        core: The server core (its backend need not be started yet; it must be before any
            command or hook runs).
        presence_sweep_interval: Period of the presence expiry sweep in seconds (§10.3).

    Returns:
        The managers; register ``FeatureSet.all`` with the core.
    """
    pubsub = BackendChannels(core)
    quota = SubscriptionQuota(core.limits.max_subscriptions)
    memberships = LocalMemberships()
    channels = ChannelManager(core, pubsub, quota)
    presence = PresenceManager(
        core, pubsub, quota, memberships, sweep_interval=presence_sweep_interval
    )
    rooms = RoomManager(core, presence, memberships, quota)
    records = RecordManager(core, pubsub, quota)
    return FeatureSet(
        channels=channels,
        rooms=rooms,
        presence=presence,
        records=records,
        quota=quota,
        all=[channels, rooms, presence, records],
    )
