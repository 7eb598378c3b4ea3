"""``python -m mesh_server`` is the ``mesh`` command line."""

from mesh_server.cli import main

main()
