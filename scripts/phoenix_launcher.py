"""Start Arize Phoenix with its OTLP gRPC receiver bound to 127.0.0.1 only.

Phoenix (20.x) binds its gRPC server to ``[::]:<PHOENIX_GRPC_PORT>`` (all
interfaces) and ignores ``PHOENIX_HOST`` for it. This launcher wraps
``grpc.aio._server.Server.add_insecure_port`` (and ``add_secure_port``) so that
any ``[::]:`` / ``0.0.0.0:`` address becomes ``127.0.0.1:``, then runs
``phoenix serve`` in-process. The HTTP side is bound through ``PHOENIX_HOST``.

Started by ``scripts/peers.sh start``; not meant to be run by hand.
"""

import sys

from grpc.aio import _server as _grpc_aio_server

_WILDCARD_PREFIXES = ("[::]:", "0.0.0.0:", "[::0]:", ":")


def _loopback(address: str) -> str:
    for prefix in _WILDCARD_PREFIXES:
        if address.startswith(prefix):
            return "127.0.0.1:" + address[len(prefix):]
    return address


_orig_insecure = _grpc_aio_server.Server.add_insecure_port
_orig_secure = _grpc_aio_server.Server.add_secure_port


def _add_insecure_port(self, address):  # type: ignore[no-untyped-def]
    bound = _loopback(address)
    print(f"phoenix_launcher: gRPC add_insecure_port {address!r} -> {bound!r}", flush=True)
    port = _orig_insecure(self, bound)
    if not port:
        raise RuntimeError(f"phoenix_launcher: could not bind gRPC to {bound}")
    return port


def _add_secure_port(self, address, server_credentials):  # type: ignore[no-untyped-def]
    bound = _loopback(address)
    print(f"phoenix_launcher: gRPC add_secure_port {address!r} -> {bound!r}", flush=True)
    return _orig_secure(self, bound, server_credentials)


_grpc_aio_server.Server.add_insecure_port = _add_insecure_port  # type: ignore[method-assign]
_grpc_aio_server.Server.add_secure_port = _add_secure_port  # type: ignore[method-assign]


def main() -> None:
    from phoenix.server.main import main as phoenix_main

    sys.argv = ["phoenix", "serve"]
    phoenix_main()


if __name__ == "__main__":
    main()
