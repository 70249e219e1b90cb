"""Opening a remote: the names this module had before ``remote/transports/`` (issue 23).

The transports, their protocol and the registry by URL scheme live in
``casstore/remote/transports/``; this module re-exports what callers imported from
here (``open_transport``, ``SCHEMES``, ``local_path``, ``describe_transport_error``,
``RemoteError``).
"""

from __future__ import annotations

from ..errors import RemoteError as RemoteError  # raised by the transports; defined with the other errors
from .transports import SCHEMES as SCHEMES
from .transports import Transport as Transport
from .transports import describe_transport_error as describe_transport_error
from .transports import local_path as local_path
from .transports import open_bucket as open_bucket
from .transports import open_transport as open_transport
