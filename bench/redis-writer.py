# A writer for bench/run.sh's Redis failover rows, run with redis-py on the stack's network
# (where the Sentinels' answers, the nodes' aliases, resolve), reading `hardstack env -o json`
# mounted at /client/env.json:
#
#   redis-writer.py sentinel KEY        the primary found through the Sentinels
#   redis-writer.py direct KEY ALIAS    the node ALIAS, as a client without Sentinel
#
# It writes until /stop/stop exists (60 s at most).
# INCR of KEY every 10 ms over one pooled connection (redis-py reconnects after an error; on
# the Sentinel client it asks the Sentinels again), 0.5 s socket timeouts. Prints "MS ok" or
# "MS fail" per attempt (wall-clock milliseconds), then "# acknowledged N value V": the last
# value a write acknowledged and the key's value at the end (V is -1 if it cannot be read).
import json
import os
import sys
import time
from urllib.parse import urlparse

import redis
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

mode, key = sys.argv[1], sys.argv[2]
v = json.load(open("/client/env.json"))["variables"]
url = urlparse(v["REDIS_URL"])
timeouts = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
tls = {"ssl": True, "ssl_ca_certs": v["REDIS_CA_CERT"]}
if "REDIS_CLIENT_CERT" in v:
    tls.update(ssl_certfile=v["REDIS_CLIENT_CERT"], ssl_keyfile=v["REDIS_CLIENT_KEY"])
login = {"username": url.username, "password": url.password}
if mode == "sentinel":
    sentinels = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in v["REDIS_SENTINELS"].split(","))]
    discovery = {"username": v["REDIS_SENTINEL_USER"], "password": v["REDIS_SENTINEL_PASSWORD"]}
    sentinel = Sentinel(sentinels, sentinel_kwargs=dict(**timeouts, **discovery, **tls), **timeouts, **tls)
    client = sentinel.master_for(v["REDIS_MASTER_NAME"], **login)
else:
    client = redis.Redis(host=sys.argv[3], port=6379, **timeouts, **tls, **login)

acknowledged = 0
start = time.monotonic()
while time.monotonic() - start < 60 and not os.path.exists("/stop/stop"):
    try:
        acknowledged = client.incr(key)
        outcome = "ok"
    except RedisError:
        outcome = "fail"
    print(f"{time.time_ns() // 1_000_000} {outcome}", flush=True)
    time.sleep(0.01)
try:
    value = int(client.get(key) or 0)
except RedisError:
    value = -1
print(f"# acknowledged {acknowledged} value {value}", flush=True)
