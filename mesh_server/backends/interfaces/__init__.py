"""The coordination interfaces, one module per concern, each with its own Guarantees.

:class:`~mesh_server.backends.base.Backend` is their intersection, which every backend
implements (memory: one process; Redis: scale-out).

============================================  ===================================================
interface                                     concern
============================================  ===================================================
:class:`.broker.Broker`                       pub/sub, application channels + history, direct
                                              sends, broadcasts (protocol.md §9, §13.2)
:class:`.registry.InstanceRegistry`           instance heartbeats, dead-instance sweeps,
                                              connection routing, store-loss recovery (§5, §13)
:class:`.rooms.RoomStore`                     room membership, joins of any instance's
                                              connections, room clearing (§10.1, §10.2)
:class:`.presence.PresenceStore`              presence deadlines, expiry sweeps, states
                                              (§10.3–§10.5)
:class:`.records.RecordStore`                 versioned records (§11)
:class:`.metadata.MetadataStore`              connection and room metadata (§12)
============================================  ===================================================

Each interface's docstring has its own **Guarantees** (delivery, ordering, atomicity, what
raises and what is dropped, size limits). These hold for every interface:

* **Atomic steps.** An operation documented as atomic is one indivisible step: no operation of
  any instance interleaves with it (Redis: one Lua script call; memory: no ``await`` inside).
  Events an operation causes are published *inside* that step, so their order is the order of
  the state changes.
* **Errors.** Failing to reach the store, or missing the operation deadline (default 5.0 s),
  raises :class:`~mesh_sdk.protocol.errors.UnavailableError` (``EUNAVAILABLE``). Nothing else
  escapes but the outcomes an operation documents (the record outcomes ``TooLargeError`` and
  ``ConflictError``, exceptions of a ``validate`` callback or an update function) and
  programming errors.
* **Isolation.** Stored and published values are encoded bytes or str: nothing mutable is shared
  between a writer and its readers (the memory backend copies through JSON).
* **Clock.** Deadlines (heartbeats, presence, state expiry) use the store's clock (Redis
  ``TIME``), never an instance's.
* **No KEYS.** Enumeration uses indexes (sets, hashes), never ``KEYS``.

Internal pub/sub channels carry the namespace prefix (default ``mesh:``); application channel
names are used verbatim (protocol.md §9.2). :mod:`mesh_server.backends.messages` defines the layout
of every internal message, so all backends publish byte-compatible events.
"""
