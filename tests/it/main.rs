//! The one integration-test binary.

// Shared helpers: the built binary in a clean environment, temporary stack directories.
mod common;

// The built binary: success, idempotency, bad input and its messages.
mod cli;
// Against the real Docker engine: up, down, compose parity, failures.
mod docker;
// The JSON contract and the exit codes, command by command.
mod contract;
// profile schema and show.
mod profile;
// connect: the clients against a running stack.
mod connect;
// verify against running stacks, hardened and weakened.
mod verify;
// rotate against running stacks, and the load test.
mod rotate;
// Day two: a changed profile converges on the running stack; plan shows it first.
mod converge;
// The stack you declared, and only it: identity, the lock, interrupted rotations, recorded
// templates, audit before delivery, hand-made users.
mod declared;
// PgBouncer in front of PostgreSQL: logins through it, its refusals, rotation under load.
mod pgbouncer;
// The Qdrant front: REST and gRPC with each user's own key.
mod front;
// Exporters and Prometheus: scrapes over TLS, the monitor logins, an alert that fires.
mod monitoring;
// The aws secret store against moto.
mod aws;
// Backups, restores, point-in-time recovery and the restore test (real engine).
mod backup;
// `hardstack env` output.
mod env;
// Every certificate of a bundle, parsed back and checked with a real verifier.
mod pki;
// The Kubernetes target: validators, GitOps safety, the posture of compose and up.
mod kubernetes;
// The Kubernetes target's pods on the real engine, as a kubelet would run them.
mod pods;
// PostgreSQL replicas: streaming, read-only, the replication login, added on day two.
mod replicas;
// PostgreSQL's primary moved: switchover under a writer, failover by `up`, pg_rewind.
mod switchover;
// Redis's replicas under Sentinel, a failover with a redis-py client riding through.
mod sentinel;
// A Qdrant cluster behind its front: peers over mutual TLS, shards on two peers, rotation peer by peer.
mod peers;
// Snapshots of every rendered file of every shipped profile.
mod render;
// The boundaries of ARCHITECTURE.md, read off src/.
mod tidy;
