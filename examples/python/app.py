"""An application on a hardstack stack: a psycopg_pool pool on PostgreSQL (through PgBouncer
when the stack runs it) and a redis-py client, both TLS verified against the stack CA.

Its credentials are what `hardstack env` gives, asked again for every new connection
(`FreshConnection.connect`, `FreshRedisCredentials.get_credentials`), so it rides through
rotation: PostgreSQL's login alternates and Redis's previous password expires, and the next
connection logs in with the current ones. Pool connections live two seconds, and the Redis
connections are dropped now and then, so new connections keep being made.

    pip install -r examples/python/requirements.txt
    HARDSTACK_DIR=stack python examples/python/app.py --seconds 30

The stack is found as the CLI finds it (HARDSTACK_DIR, default ./stack); `hardstack` is on
PATH, or where HARDSTACK says. It ends with `N operations, F failures` (exit 1 when F > 0).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from urllib.parse import unquote, urlsplit

import psycopg
import psycopg_pool
import redis


def credentials():
    """What `hardstack env` gives now, by variable."""
    binary = os.environ.get("HARDSTACK", "hardstack")
    out = subprocess.run([binary, "env", "-o", "json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["variables"]


class FreshConnection(psycopg.Connection):
    """A PostgreSQL connection that logs in with the DATABASE_URL current when it is made."""

    @classmethod
    def connect(cls, conninfo="", **kwargs):
        return super().connect(credentials()["DATABASE_URL"], **kwargs)


class FreshRedisCredentials(redis.CredentialProvider):
    """Redis's user and password, asked for by redis-py for every new connection."""

    def get_credentials(self):
        url = urlsplit(credentials()["REDIS_URL"])
        return unquote(url.username), unquote(url.password)


def redis_client():
    found = credentials()
    url = urlsplit(found["REDIS_URL"])
    return redis.Redis(
        host=url.hostname,
        port=url.port,
        ssl=True,
        ssl_ca_certs=found["REDIS_CA_CERT"],
        ssl_certfile=found.get("REDIS_CLIENT_CERT"),
        ssl_keyfile=found.get("REDIS_CLIENT_KEY"),
        ssl_check_hostname=True,
        credential_provider=FreshRedisCredentials(),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0, help="how long to keep working")
    seconds = parser.parse_args().seconds
    pool = psycopg_pool.ConnectionPool(
        connection_class=FreshConnection, min_size=1, max_size=4, max_lifetime=2.0, timeout=5.0, open=True
    )
    client = redis_client()
    with pool.connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS example_events (id bigserial PRIMARY KEY, note text)")
    operations, failures = 0, []
    deadline = time.monotonic() + seconds
    while True:
        for step in range(50):
            operations += 1
            try:
                with pool.connection() as conn:
                    conn.execute("INSERT INTO example_events (note) VALUES (%s)", (f"python {step}",))
                operations += 1
                client.set(f"app:example:python:{step}", step, ex=60)
                if step % 10 == 0:
                    # The next command opens a new connection, which asks for the credentials.
                    client.connection_pool.disconnect()
            except Exception as err:  # noqa: BLE001 - every failure is counted and shown
                failures.append(f"{type(err).__name__}: {err}")
        if time.monotonic() >= deadline:
            break
    pool.close()
    if failures:
        print(f"first failure: {failures[0]}", file=sys.stderr)
    print(f"{operations} operations, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
