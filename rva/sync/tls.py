"""TLS for the edge's calls to the cloud: the system's CAs, or a CA bundle the operator names."""

from __future__ import annotations

import ssl


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context: ``ca_file`` (a private CA's bundle) when given, else the system's CAs.

    Raises:
        OSError: ``ca_file`` cannot be read.
        ssl.SSLError: It holds no certificate.

    """
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
