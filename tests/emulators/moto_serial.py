"""moto's server, answering one request at a time: `python3 moto_serial.py HOST PORT`.

moto checks S3's conditional headers (If-Match, If-None-Match) and then stores the object
as two separate steps, without a lock, while its stock server (`moto_server`) handles
requests on threads: two conditional PUTs racing on one key can both pass the check, a
lost update that real S3 never allows (it applies the condition atomically). Stowage's
read-modify-write, lease and race tests depend on that atomicity, so the tests run moto
unthreaded, which makes every request atomic. It is still the real moto application.
"""

import sys

from werkzeug.serving import run_simple

from moto.server import DomainDispatcherApplication, create_backend_app


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: moto_serial.py HOST PORT")
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
