"""The subscription half of :class:`~mesh_sdk.client.MeshClient`.

Channels, rooms, presence, records and metadata (protocol.md §7–§12) each have a mixin beside
their subscription objects (``channels_api`` beside ``channels``, and so on; ``metadata_api``
has none), all built on :class:`~mesh_sdk.subscriptions.core.SubscriptionCore`.
:class:`SubscriptionAPI` composes them and owns what spans the features: routing their pushes,
re-subscription after a reconnect (§14), and ending every subscription when the client closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from mesh_sdk.errors import SubscriptionDenied
from mesh_sdk.protocol.errors import MeshConnectionError, MeshError, UnavailableError
from mesh_sdk.protocol.generated.models import (
    JoinRoomRequest,
    SubscribeChannelRequest,
    SubscribePresenceRequest,
    SubscribeRecordRequest,
)
from mesh_sdk.subscriptions.channels_api import ChannelsAPI
from mesh_sdk.subscriptions.core import COMMAND_NAMES
from mesh_sdk.subscriptions.metadata_api import MetadataAPI
from mesh_sdk.subscriptions.presence_api import presence_state_request
from mesh_sdk.subscriptions.records import Outcome
from mesh_sdk.subscriptions.records_api import RecordsAPI
from mesh_sdk.subscriptions.rooms_api import RoomsAPI

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["SubscriptionAPI"]

logger = logging.getLogger("mesh_sdk")

RESTORE_RETRY_FIRST_DELAY = 0.1
"""Seconds before repeating a re-subscription answered ``EUNAVAILABLE`` (doubles per attempt)."""
RESTORE_RETRY_MAX_DELAY = 2.0
"""Longest pause (seconds) between repeats of a re-subscription answered ``EUNAVAILABLE``."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _is_current(registry: dict[str, Any], key: str, sub: Any) -> bool:
    """Whether ``sub`` is still the application's subscription for ``key``."""
    return registry.get(key) is sub


# The features share no method, so the order of the bases only matters to the API reference,
# which lists inherited members in reverse MRO: metadata, channels, presence, rooms, records.
class SubscriptionAPI(RecordsAPI, RoomsAPI, ChannelsAPI, MetadataAPI):
    """Channels, rooms, presence, records and metadata; mixed into ``MeshClient``."""

    # Provided by MeshClient.
    _republish_presence_states: bool

    def _init_subscriptions(self) -> None:
        self._channels = {}
        self._records = {}
        self._presence = {}
        self._rooms = {}
        self._presence_states = {}

    # ----------------------------------------------------------------------------------------
    # Push routing (§8)

    def _route_mesh_push(self, command: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        key = payload.get("recordId") if command.startswith("mesh/record-") else None
        if command == "mesh/subscription-message":
            channel = self._channels.get(_text(payload.get("channel")))
            if channel is not None:
                channel._deliver(payload.get("message"))
        elif command == "mesh/record-update":
            record = self._records.get(_text(key))
            if record is not None and record._apply_push(payload) is Outcome.GAP:
                self._spawn(self._resync(record), "mesh-sdk-resync")
        elif command == "mesh/record-deleted":
            record = self._records.pop(_text(key), None)
            if record is not None:
                version = payload.get("version")
                record._deleted(version if type(version) is int else record.version)
        elif command == "mesh/presence-update":
            presence = self._presence.get(_text(payload.get("roomName")))
            if presence is not None:
                presence._apply(payload)

    # ----------------------------------------------------------------------------------------
    # Re-subscription after a reconnect (§14)

    async def _restore_subscriptions(self) -> None:
        """Re-join rooms; re-subscribe presence, channels, records; re-publish states.

        Raises:
            MeshConnectionError: The socket dropped meanwhile (the next connection retries).
        """
        await self._restore_all(
            self._restore_one(
                JoinRoomRequest.model_construct(roomName=room),
                partial(self._room_answer, handle),
                partial(self._drop_room, handle),
                partial(_is_current, self._rooms, room, handle),
            )
            for room, handle in list(self._rooms.items())
        )
        steps: list[Awaitable[None]] = []
        for room, presence in list(self._presence.items()):
            if presence._confirmed:
                steps.append(
                    self._restore_one(
                        SubscribePresenceRequest.model_construct(roomName=room),
                        partial(self._presence_answer, presence, True),
                        partial(self._drop, self._presence, room, presence),
                        partial(_is_current, self._presence, room, presence),
                    )
                )
        for name, channel in list(self._channels.items()):
            if channel._confirmed:
                # Without historyLimit: nothing is replayed (§14 (2)).
                steps.append(
                    self._restore_one(
                        SubscribeChannelRequest.model_construct(channel=name),
                        partial(self._channel_answer, channel, False),
                        partial(self._drop, self._channels, name, channel),
                        partial(_is_current, self._channels, name, channel),
                    )
                )
        for record_id, record in list(self._records.items()):
            if record._confirmed:
                steps.append(
                    self._restore_one(
                        SubscribeRecordRequest.model_construct(
                            recordId=record_id, mode=record.mode
                        ),
                        partial(self._record_answer, record),
                        partial(self._drop, self._records, record_id, record),
                        partial(_is_current, self._records, record_id, record),
                    )
                )
        await self._restore_all(steps)
        if self._republish_presence_states:
            await self._restore_all(
                self._restore_one(
                    presence_state_request(room, state, None, silent),
                    partial(self._state_republished, room),
                    self._report,
                )
                for room, (state, silent) in list(self._presence_states.items())
            )

    async def _restore_all(self, steps: Iterable[Awaitable[None]]) -> None:
        results = await asyncio.gather(*steps, return_exceptions=True)
        for result in results:
            if isinstance(result, MeshConnectionError | asyncio.CancelledError):
                raise result

    async def _restore_one(
        self,
        request: BaseModel,
        on_result: Callable[[Any], Any] | None,
        drop: Callable[[SubscriptionDenied], Any],
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        try:
            await self._builtin(request, internal=True, on_result=on_result)
        except MeshConnectionError:
            raise
        except SubscriptionDenied as exc:
            drop(exc)
        except UnavailableError as exc:
            self._report(exc)
            if wanted is not None:
                # The server is up but its backend is not (yet): the subscription is kept and
                # asked for again, in the background so queued commands are not held up.
                retry = self._retry_restore(request, on_result, drop, wanted)
                self._spawn(retry, "mesh-sdk-restore-retry")
        except MeshError as exc:
            self._report(exc)
        except Exception:
            logger.exception("restoring %s failed", COMMAND_NAMES[type(request)])

    async def _retry_restore(
        self,
        request: BaseModel,
        on_result: Callable[[Any], Any] | None,
        drop: Callable[[SubscriptionDenied], Any],
        wanted: Callable[[], bool],
    ) -> None:
        """Repeat one restore step after ``EUNAVAILABLE`` with backoff until it is answered.

        Ends when the step succeeds or is denied, when the application dropped the subscription,
        or when the socket closes (the next connection restores everything anyway).
        """
        delay = RESTORE_RETRY_FIRST_DELAY
        while True:
            await asyncio.sleep(delay)  # backoff between attempts, not synchronisation
            if not wanted():
                return
            try:
                await self._builtin(request, internal=True, on_result=on_result)
            except MeshConnectionError:
                return
            except SubscriptionDenied as exc:
                drop(exc)
                return
            except UnavailableError:
                delay = min(delay * 2, RESTORE_RETRY_MAX_DELAY)
                continue
            except MeshError as exc:
                self._report(exc)
            return

    def _end_subscriptions(self) -> None:
        for registry in (self._channels, self._records, self._presence):
            for sub in registry.values():
                sub._end()
            registry.clear()
        for handle in self._rooms.values():
            handle.joined = False
        self._rooms.clear()
        self._presence_states.clear()
