// An application on a hardstack stack: a pg pool on PostgreSQL (through PgBouncer when the
// stack runs it) and an ioredis client, both TLS verified against the stack CA.
//
// Its credentials are what `hardstack env` gives, asked again for every new connection: each
// pool connection is a `FreshClient`, built from the DATABASE_URL current at that moment, and
// the Redis client takes the current REDIS_URL's user and password before each reconnection
// (`freshRedisLogin`). So it rides through rotation: PostgreSQL's login alternates and Redis's
// previous password expires, and the next connection logs in with the current ones. Pool
// connections live two seconds, and Redis reconnects now and then, so new connections keep
// being made.
//
//     npm ci --prefix examples/node
//     HARDSTACK_DIR=stack node examples/node/app.js --seconds 30
//
// The stack is found as the CLI finds it (HARDSTACK_DIR, default ./stack); `hardstack` is on
// PATH, or where HARDSTACK says. It ends with `N operations, F failures` (exit 1 when F > 0).

'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const pg = require('pg');
const { Redis } = require('ioredis');

/** What `hardstack env` gives now, by variable. */
function credentials() {
  const out = execFileSync(process.env.HARDSTACK || 'hardstack', ['env', '-o', 'json'], { encoding: 'utf8' });
  return JSON.parse(out).variables;
}

/** A PostgreSQL connection that logs in with the DATABASE_URL current when it is made. */
class FreshClient extends pg.Client {
  constructor(config) {
    super({ ...config, connectionString: credentials().DATABASE_URL });
  }
}

/** Redis's user and password from the REDIS_URL current now. */
function freshRedisLogin() {
  const url = new URL(credentials().REDIS_URL);
  return { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
}

function redisClient() {
  const found = credentials();
  const url = new URL(found.REDIS_URL);
  const read = (name) => (found[name] ? fs.readFileSync(found[name]) : undefined);
  const client = new Redis({
    host: url.hostname,
    port: Number(url.port),
    ...freshRedisLogin(),
    tls: { ca: read('REDIS_CA_CERT'), cert: read('REDIS_CLIENT_CERT'), key: read('REDIS_CLIENT_KEY'), servername: url.hostname },
    // The application's ACL user may not run INFO, which ioredis's ready check asks.
    enableReadyCheck: false,
    retryStrategy: () => 50,
  });
  // Before each reconnection: the login current then.
  client.on('reconnecting', () => Object.assign(client.options, freshRedisLogin()));
  return client;
}

async function main() {
  const at = process.argv.indexOf('--seconds');
  const seconds = at >= 0 ? Number(process.argv[at + 1]) : 0;
  const pool = new pg.Pool({ Client: FreshClient, max: 4, maxLifetimeSeconds: 2 });
  const redis = redisClient();
  await pool.query('CREATE TABLE IF NOT EXISTS example_events (id bigserial PRIMARY KEY, note text)');
  let operations = 0;
  const failures = [];
  const deadline = Date.now() + seconds * 1000;
  do {
    for (let step = 0; step < 50; step += 1) {
      operations += 2;
      try {
        await pool.query('INSERT INTO example_events (note) VALUES ($1)', [`node ${step}`]);
        await redis.set(`app:example:node:${step}`, step, 'EX', 60);
        if (step % 10 === 0) {
          // The next command waits for a new connection, which logs in afresh.
          redis.disconnect(true);
        }
      } catch (err) {
        failures.push(`${err.name}: ${err.message}`);
      }
    }
  } while (Date.now() < deadline);
  await pool.end();
  redis.disconnect();
  if (failures.length > 0) {
    console.error(`first failure: ${failures[0]}`);
  }
  console.log(`${operations} operations, ${failures.length} failures`);
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
