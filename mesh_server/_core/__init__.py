"""The private core of a :class:`~mesh_server.MeshServer` (not public API; may change any time).

``MeshServer`` (:mod:`mesh_server.server`) is a small façade over it. By concern:

* :mod:`.base`: :class:`Core`, the instance's state (hub, room index, pipeline, feature managers,
  backend) and what the feature managers see of it (:class:`mesh_server.features.ServerCore`),
  plus push delivery.
* :mod:`.connections`: connection open, liveness (pongs) and cleanup.
* :mod:`.gate`: upgrade decisions, ``authenticate``, health and metrics endpoints, readiness.
* :mod:`.lifecycle`: start, graceful close, fencing and backend recovery.
"""
