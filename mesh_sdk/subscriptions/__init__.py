"""Client-side subscriptions: channels, records, presence and room handles."""

from mesh_sdk.subscriptions.channels import ChannelSubscription
from mesh_sdk.subscriptions.presence import PresenceSnapshot, PresenceSubscription, PresenceUpdate
from mesh_sdk.subscriptions.records import RecordChange, RecordSubscription
from mesh_sdk.subscriptions.rooms import RoomHandle

__all__ = [
    "ChannelSubscription",
    "PresenceSnapshot",
    "PresenceSubscription",
    "PresenceUpdate",
    "RecordChange",
    "RecordSubscription",
    "RoomHandle",
]
