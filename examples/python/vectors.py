"""Qdrant through the stack's front with the official Python client, `qdrant-client`, over
REST (httpx) or gRPC (`prefer_grpc`), TLS verified against the stack CA, with the user's
client certificate where the stack requires one, and the user's own key.

    pip install -r examples/python/requirements.txt
    HARDSTACK_DIR=stack python examples/python/vectors.py --grpc --user app

A read-write user creates the collection `examples_vectors` if it is missing, upserts a few
points and searches them; a read-only user (`--read-only`) searches, and reports the refusal of
a write (HTTP 403 over REST, PERMISSION_DENIED over gRPC) as `write refused`. The key is asked
of `hardstack env` when the client is made.
"""

import argparse
import json
import os
import ssl
import subprocess
import sys
from urllib.parse import urlsplit

import grpc
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

COLLECTION = "examples_vectors"


def credentials(user):
    """What `hardstack env --user USER` gives now, by variable."""
    binary = os.environ.get("HARDSTACK", "hardstack")
    out = subprocess.run([binary, "env", "--user", user, "-o", "json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["variables"]


def client(found, use_grpc):
    """A client of the front: the CA, the client certificate if any, the user's key."""
    cert, key = found.get("QDRANT_CLIENT_CERT"), found.get("QDRANT_CLIENT_KEY")
    # REST through httpx, with an SSL context of its own: the stack CA only, and the client
    # certificate (httpx 0.28 ignores `cert=` beside a `verify=` path).
    context = ssl.create_default_context(cafile=found["QDRANT_CA_CERT"])
    if cert:
        context.load_cert_chain(cert, key)
    rest = dict(url=found["QDRANT_URL"], api_key=found["QDRANT_API_KEY"], verify=context)
    # The client's own version check makes a request of its own that ignores `verify` (it trusts
    # the system's CAs only) and fails; the pinned client is of the server's minor version.
    rest["check_compatibility"] = False
    if not use_grpc:
        return QdrantClient(**rest)
    options = {"root_certificates": open(found["QDRANT_CA_CERT"], "rb").read()}
    if cert:
        options["certificate_chain"] = open(cert, "rb").read()
        options["private_key"] = open(key, "rb").read()
    grpc_port = urlsplit(found["QDRANT_GRPC_URL"]).port
    return QdrantClient(**rest, grpc_port=grpc_port, prefer_grpc=True, grpc_options=options)


def refused(err):
    """Whether an error is the server's refusal of a write: 403, or PERMISSION_DENIED."""
    if isinstance(err, UnexpectedResponse):
        return err.status_code == 403
    return isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.PERMISSION_DENIED


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", default="app")
    parser.add_argument("--grpc", action="store_true", help="gRPC (prefer_grpc) instead of REST")
    parser.add_argument("--read-only", action="store_true", help="the user may only read")
    args = parser.parse_args()
    qdrant = client(credentials(args.user), args.grpc)
    points = [models.PointStruct(id=i, vector=[float(i), 1.0], payload={"n": i}) for i in range(1, 6)]
    if args.read_only:
        try:
            qdrant.upsert(COLLECTION, points=points, wait=True)
            print("write accepted")
            return 1
        except Exception as err:  # the client raises its transport's own error
            if not refused(err):
                raise
            print("write refused")
    else:
        if not qdrant.collection_exists(COLLECTION):
            qdrant.create_collection(COLLECTION, vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
        qdrant.upsert(COLLECTION, points=points, wait=True)
    found = qdrant.query_points(COLLECTION, query=[5.0, 1.0], limit=3).points
    print(f"{len(found)} points found, nearest {found[0].id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
