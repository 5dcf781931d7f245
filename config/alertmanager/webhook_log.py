"""A placeholder Alertmanager receiver: prints every notification it gets, one JSON line each.

docker-compose runs it as `alert-log` so that the example receivers of
alertmanager.yml are reachable and a notification can be seen with
`docker compose logs alert-log`. Replace the receivers with your pager and
chat bridges; this is not one. Standard library only.

    python webhook_log.py --port 5001
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
        except ValueError:
            self.send_error(400, "expected an Alertmanager webhook payload (JSON)")
            return
        alerts = payload.get("alerts", [])
        line = {"path": self.path, "status": payload.get("status"), "receiver": payload.get("receiver"),
                "alerts": [{**a.get("labels", {}), "runbook_url": a.get("annotations", {}).get("runbook_url")}
                           for a in alerts]}
        print(json.dumps(line), flush=True)
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        if self.path != "/healthz":
            self.send_error(404, "POST Alertmanager webhooks here; GET /healthz for health")
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args) -> None:  # one line per notification is enough
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--addr", default="0.0.0.0")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.addr, args.port), Receiver)
    print(f"alert-log: listening on {args.addr}:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
