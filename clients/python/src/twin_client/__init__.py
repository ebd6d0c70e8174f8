"""twin_client: a Python client for the twin gateway (`twin serve`).

    from twin_client import Client

    with Client("127.0.0.1:50051", api_key="...") as client:
        client.enroll("alice", "alice-1.png", wait=True)
        print(client.verify_subject("alice", "probe.png").match)

Every RPC of twin.v1 (Verification, Similarity, Enrollment, Models, AuditTrail, ApiKeys)
is a method of `Client`; results are frozen dataclasses, errors `TwinError`s.
"""

from __future__ import annotations

from . import errors, types
from ._images import Text
from .client import IMAGE_EXTENSIONS, Client
from .errors import *  # noqa: F403 - TwinError and its subclasses, as listed in errors.__all__
from .types import *  # noqa: F403 - the enums, results and asdict, as listed in types.__all__

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("twin-client")
except PackageNotFoundError:  # pragma: no cover - run from a source tree
    __version__ = "0.0.0"

# The client, and every public name of `errors` and `types`.
__all__ = ["Client", "IMAGE_EXTENSIONS", "Text"]
__all__ += errors.__all__
__all__ += types.__all__
