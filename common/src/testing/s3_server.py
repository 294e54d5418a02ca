# moto's S3 server with atomic conditional writes, as hexyard's tests run it:
#   python3 -c "$(cat s3_server.py)" -H HOST -p PORT      (arguments as moto_server's)
#
# moto checks If-Match / If-None-Match and then writes, in two steps, on a threaded server, so
# two writers racing on one ETag can both pass the check. Real S3 never lets that happen (a
# conditional write is a compare-and-swap there), and hexyard's multi-writer publishing relies
# on it: with moto's race, two publishers once both "won" a write of `versions` and a release
# went missing from the index. Here every PutObject runs under one lock.
#
# HEXYARD_MOTO_SWITCH_INTERVAL (seconds) sets the interpreter's thread switch interval; a tiny
# one makes races show up often. HEXYARD_MOTO_UNSAFE=1 leaves moto's PutObject as it is (to
# watch the race test fail). HEXYARD_MOTO_LATENCY_MS delays every request by that many
# milliseconds before moto handles it (outside the lock), standing in for the round trip to a
# real S3 endpoint in benchmarks.
import os
import sys
import threading
import time

import moto.server
from moto.s3.responses import S3Response

_lock = threading.Lock()
_put_object = S3Response.put_object


def _atomic_put_object(self, *args, **kwargs):
    with _lock:
        return _put_object(self, *args, **kwargs)


if os.environ.get("HEXYARD_MOTO_UNSAFE") != "1":
    S3Response.put_object = _atomic_put_object
if "HEXYARD_MOTO_LATENCY_MS" in os.environ:
    _delay = float(os.environ["HEXYARD_MOTO_LATENCY_MS"]) / 1000
    _dispatch = moto.server.DomainDispatcherApplication.__call__

    def _delayed_dispatch(self, environ, start_response):
        time.sleep(_delay)
        return _dispatch(self, environ, start_response)

    moto.server.DomainDispatcherApplication.__call__ = _delayed_dispatch
if "HEXYARD_MOTO_SWITCH_INTERVAL" in os.environ:
    sys.setswitchinterval(float(os.environ["HEXYARD_MOTO_SWITCH_INTERVAL"]))
moto.server.main(sys.argv[1:])
