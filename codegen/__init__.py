"""Contract codegen: JSON Schema contract directory → pydantic models, typed facade, index.

Run as ``python -m codegen CONTRACT_DIR --out PACKAGE_DIR [--check]`` or ``mesh codegen``.
Never imported at run time by ``mesh_sdk`` or ``mesh_server`` (STYLE.md "Architecture").
"""
