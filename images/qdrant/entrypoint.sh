#!/bin/sh
# Starts Qdrant with the arguments given (the official image's entrypoint runs ./qdrant too).
set -e
exec ./qdrant "$@"
