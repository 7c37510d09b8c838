"""A downstream service for the cross-process test: a real HTTP server in its own process.

It knows nothing about journeys: it adopts whatever trace and journey arrive in
the request headers (``traceparent`` and W3C ``baggage``), does some traced
work, and exports to its own warehouse file. Usage:
``python downstream_service.py DB_PATH`` prints the port it listens on.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from journeyscope import instrument


def main(db: str) -> None:
    tracing = instrument.setup(db=db, batch=False, service_name="downstream")
    tracer = tracing.tracer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            with instrument.continue_journey(dict(self.headers)) as state:
                with tracer.start_as_current_span("downstream.handle"):
                    instrument.record_turn("agent", "Your order ships tomorrow.")
            body = (state.journey_id if state else "none").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    try:
        server.handle_request()  # one request, then shut down cleanly so spans are flushed
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
