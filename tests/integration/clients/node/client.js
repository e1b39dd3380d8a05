// One node-postgres session through pgmtls: a query, a prepared statement, COPY in and out, a
// cancel. Usage: node client.js PORT CA CERT KEY (user alice, database postgres, host 127.0.0.1
// checked against the server certificate as "localhost"). Prints one "<step> ok ..." line per step
// and exits 0, or prints what went wrong and exits 1. Run by tests/integration/clients_test.cpp.
'use strict';
const fs = require('fs');
const { Readable, Writable } = require('stream');
const { pipeline } = require('stream/promises');
const pg = require('pg');
const copyStreams = require('pg-copy-streams');

function check(ok, what) {
  if (!ok) throw new Error(what);
}

async function main([port, ca, cert, key]) {
  const target = { host: '127.0.0.1', port: Number(port), user: 'alice', database: 'postgres' };
  const client = new pg.Client({
    ...target,
    // rejectUnauthorized and servername: verify the chain and the host name, as verify-full does.
    ssl: {
      ca: fs.readFileSync(ca), cert: fs.readFileSync(cert), key: fs.readFileSync(key),
      rejectUnauthorized: true, servername: 'localhost',
    },
  });
  await client.connect();

  let r = await client.query('SELECT current_user AS u, $1::int + 1 AS answer', [41]);
  check(r.rows[0].answer === 42, 'query answer');
  console.log(`query ok user=${r.rows[0].u}`);

  // A named query is parsed once on the server and then only bound and executed.
  for (let i = 1; i <= 3; i++) {
    r = await client.query({ name: 'twice', text: 'SELECT $1::int * 2 AS v', values: [21 * i] });
    check(r.rows[0].v === 42 * i, `prepared answer ${i}`);
  }
  console.log('prepared ok');

  let rows = '';
  for (let i = 0; i < 1000; i++) rows += `${i}\tline ${i}\n`;
  await client.query('CREATE TEMP TABLE lines (n int, t text)');
  await pipeline(Readable.from([rows]), client.query(copyStreams.from('COPY lines FROM STDIN')));
  r = await client.query('SELECT count(*)::int AS c, sum(n)::int AS s FROM lines');
  check(r.rows[0].c === 1000 && r.rows[0].s === 499500, 'COPY in rows');
  let out = '';
  await pipeline(client.query(copyStreams.to('COPY lines TO STDOUT')), new Writable({
    write(chunk, _encoding, done) { out += chunk; done(); },
  }));
  check(out === rows, 'COPY out content');
  console.log('copy ok rows=1000');

  // node-postgres cancels through a second, plaintext Client (as libpq sends a CancelRequest).
  // A cancel before the query runs is a no-op on the server: repeat until it is interrupted.
  const started = Date.now();
  const sleep = client.query(new pg.Query('SELECT pg_sleep(60)'));
  const outcome = new Promise((resolve) => {
    sleep.on('error', (e) => resolve(e));
    sleep.on('end', () => resolve(null));
  });
  let interrupted = false;
  const canceller = (async () => {
    while (!interrupted) {
      new pg.Client(target).cancel(client, sleep);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  const error = await outcome;
  interrupted = true;
  await canceller;
  check(error !== null, 'pg_sleep(60) finished: the cancel never arrived');
  check(error.code === '57014', `SQLSTATE ${error.code}: ${error.message}`);
  r = await client.query('SELECT 1 AS one');
  check(r.rows[0].one === 1, 'query after cancel');
  console.log(`cancel ok after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await client.end();
}

main(process.argv.slice(2)).then(() => process.exit(0), (e) => {
  console.log(`failed: ${e.stack || e}`);
  process.exit(1);
});
