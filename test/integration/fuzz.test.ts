/**
 * Bad input against both ingest paths: a hand-written corpus of bad messages
 * and a seeded fuzzer (more than 10,000 mutated messages) over the probe
 * WebSocket (authenticated batches, unauthenticated hellos) and HTTP ingest.
 * Every mutant is invalid by construction (test/helpers/fuzz.ts), so every
 * one must be refused with an error object; afterwards the server still
 * answers, still stores a valid batch, and holds exactly the valid rows.
 *
 * Replay a run with the seed it prints: CITYMESH_FUZZ_SEED=<seed>.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BATCH_SAMPLES, parseProbeMessage } from '../../protocol/index.js';
import {
  authFailingHello, fuzzSeed, IdSource, mutateBatch, mutateHello, preview, Rng, setKey, Tally, validBatch, validSample,
  type FuzzCentre, type JsonObject, type Mutant,
} from '../helpers/fuzz.js';
import { getJson, startTestServer, testTopology, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

const CENTRES = ['alpha', 'beta', 'gamma'];
const topo = testTopology(CENTRES, '127.0.6');
const SEED = fuzzSeed();
const root = new Rng(SEED);
console.log(`fuzz seed ${SEED} (replay: CITYMESH_FUZZ_SEED=${SEED} npx vitest run test/integration/fuzz.test.ts)`);

/** Sizes of the run: 6 x 1000 + 1500 + 60 + 4 x 900 = 11,160 fuzzed messages. */
const WS_STREAMS = 6;
const WS_PER_STREAM = 1000;
const HELLO_MESSAGES = 1500;
const AUTH_FAILING_HELLOS = 60;
const HTTP_STREAMS = 4;
const HTTP_PER_STREAM = 900;
/** Longest wait for one reply; a missing reply is a failure, not a timing assertion. */
const REPLY_BOUND_MS = 10_000;

function who(centre: string): FuzzCentre {
  return { centre, peers: topo.topology.peersOf(centre), all: CENTRES };
}

type ErrorReply = { type?: unknown; code?: unknown; error?: unknown; reason?: unknown };

function isErrorObject(reply: unknown): reply is ErrorReply & { error: string } {
  return typeof reply === 'object' && reply !== null && typeof (reply as ErrorReply).error === 'string' && ((reply as ErrorReply).error as string).length > 0;
}

function rowCountQuery(server: TestServer): Promise<number> {
  return server.store.client
    .query({ query: 'SELECT count() AS n FROM latency_trains', format: 'JSONEachRow' })
    .then((r) => r.json<{ n: number }>())
    .then((rows) => Number(rows[0]!.n));
}

function postIngest(server: TestServer, token: string, body: string | Buffer): Promise<{ status: number; body: unknown }> {
  return fetch(`${server.url}/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body,
  }).then(async (r) => {
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: kept as text, reported as a failure by the caller
    }
    return { status: r.status, body: parsed };
  });
}

async function helloClient(server: TestServer, centre: string): Promise<RawClient> {
  const client = await RawClient.open(server.wsUrl);
  client.send({ type: 'hello', centre, token: topo.tokens[centre], version: 'fuzz' });
  const plan = await client.next(REPLY_BOUND_MS);
  expect(plan).toMatchObject({ type: 'plan', centre });
  return client;
}

function sendRaw(client: RawClient, payload: string | Buffer): void {
  if (typeof payload === 'string') client.ws.send(payload);
  else client.ws.send(payload, { binary: true });
}

describe('ingest fuzzing: every bad message refused, nothing stored from it', () => {
  let server: TestServer;
  /** Samples of valid batches acknowledged on this server: the only rows it may hold. */
  let validSamples = 0;
  const sent = new Tally();
  const rejectedByCode = new Tally();
  const byMutator = new Tally();
  const failures: string[] = [];

  beforeAll(async () => {
    // Limits raised for speed (the rate limit itself is tested below on a default server);
    // every connection waits for each reply before sending the next message.
    server = await startTestServer(topo.topology, {
      // The pre-authentication limits too: hellos up to 100 KB deep arrays are fuzzed on one connection
      // (the 8 KiB hello bound at its default is tested in hostile-input.test.ts).
      collectorLimits: {
        messagesPerSecond: 1e6, messageBurst: 1e6, maxConnectionsPerCentre: 100, helloTimeoutS: 600,
        maxHelloBytes: 4 * 1024 * 1024, maxUnauthenticatedPerAddress: 1000,
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** The fuzzer's own guard: each mutant comes from a valid message and differs from it. */
  function checkBase(mutant: Mutant & { base: string }): void {
    const parsed = parseProbeMessage(mutant.base);
    if (!parsed.ok) failures.push(`fuzzer bug: the base of ${mutant.mutator} is invalid (${parsed.error}): ${preview(mutant.base)}`);
    if (mutant.payload === mutant.base) failures.push(`fuzzer bug: ${mutant.mutator} changed nothing`);
  }

  function recordWs(mutant: Mutant, reply: unknown, transport: string): void {
    sent.add(transport);
    byMutator.add(mutant.mutator.split(':')[0]!);
    const r = reply as ErrorReply;
    if (isErrorObject(reply) && r.type === 'error' && typeof r.code === 'string') {
      rejectedByCode.add(r.code);
    } else {
      failures.push(`${transport} ${mutant.mutator}: answered ${JSON.stringify(reply)?.slice(0, 300)} to ${preview(mutant.payload)}`);
    }
  }

  function recordHttp(mutant: Mutant, status: number, body: unknown, transport: string): void {
    sent.add(transport);
    byMutator.add(mutant.mutator.split(':')[0]!);
    if (status >= 400 && status < 500 && isErrorObject(body)) {
      const b = body as ErrorReply;
      rejectedByCode.add(typeof b.code === 'string' ? b.code : String(b.error));
    } else {
      failures.push(`${transport} ${mutant.mutator}: ${status} ${JSON.stringify(body)?.slice(0, 300)} to ${preview(mutant.payload)}`);
    }
  }

  // -------------------------------------------------------------------------
  // the corpus

  const corpusRng = root.fork(1);
  const corpusIds = new IdSource('corpus');
  const alpha = who('alpha');
  const nowUs = Date.now() * 1000;
  const good = (samples = 2): JsonObject => validBatch(corpusRng, corpusIds, alpha, nowUs, samples);
  const withSample = (patch: (s: JsonObject) => void): JsonObject => {
    const b = good(1);
    patch((b.samples as JsonObject[])[0]!);
    return b;
  };
  const stringify = (v: unknown) => JSON.stringify(v);
  const numberLiteral = (literal: string) => stringify(withSample((s) => { s.rttMinUs = '@@NUM@@'; s.received = 1; s.lost = (s.sent as number) - 1; s.rttsUs = [1]; s.rttMedianUs = s.rttP99Us = s.rttMaxUs = 1; s.synced = false; s.fwdUs = s.revUs = []; })).replace('"@@NUM@@"', literal);

  interface CorpusEntry {
    name: string;
    payload: string | Buffer;
    ws: string;
    http: string;
    httpStatus: number;
  }
  const entry = (name: string, payload: string | Buffer, ws: string, http = ws, httpStatus = http === 'too_large' ? 413 : 400): CorpusEntry => ({ name, payload, ws, http, httpStatus });

  const corpus: CorpusEntry[] = [
    entry('empty message', '', 'bad_json'),
    entry('not JSON', 'hello collector', 'bad_json'),
    entry('JSON null', 'null', 'bad_message'),
    entry('JSON array', '[]', 'bad_message'),
    entry('JSON number', '42', 'bad_message'),
    entry('JSON string', '"batch"', 'bad_message'),
    entry('empty object', '{}', 'unknown_type'),
    entry('unknown type', stringify({ type: 'teleport', batchId: 'x' }), 'unknown_type'),
    entry('a valid hello where a batch is expected', stringify({ type: 'hello', centre: 'alpha', token: topo.tokens.alpha, version: 'x' }), 'already_authenticated', 'unknown_type'),
    entry('batch without batchId', stringify((({ batchId: _omit, ...rest }) => rest)(good())), 'bad_message'),
    entry('batch without samples', stringify((({ samples: _omit, ...rest }) => rest)(good())), 'bad_message'),
    entry('empty samples', stringify({ ...good(), samples: [] }), 'bad_message'),
    entry(`${MAX_BATCH_SAMPLES + 1} samples`, stringify(good(MAX_BATCH_SAMPLES + 1)), 'too_large'),
    entry('unknown top-level field', stringify({ ...good(), extra: 1 }), 'bad_message'),
    entry('top-level centre field (speak for another centre)', stringify({ ...good(), centre: 'beta' }), 'bad_message'),
    entry('sample with a src field (write as another centre)', stringify(withSample((s) => { s.src = 'beta'; })), 'bad_message'),
    entry('"__proto__" key in a sample', stringify(withSample((s) => setKey(s, '__proto__', { src: 'beta' }))), 'bad_message'),
    entry('number as a string', stringify(withSample((s) => { s.sent = String(s.sent); })), 'bad_message'),
    entry('"NaN" as a string', stringify(withSample((s) => { s.errorEstimateUs = 'NaN'; })), 'bad_message'),
    entry('NaN literal', numberLiteral('NaN'), 'bad_json'),
    entry('Infinity literal', numberLiteral('Infinity'), 'bad_json'),
    entry('1e309 (parses to Infinity)', numberLiteral('1e309'), 'bad_message'),
    entry('negative count', stringify(withSample((s) => { s.duplicated = -1; })), 'bad_message'),
    entry('startedAtUs 1e300', stringify(withSample((s) => { s.startedAtUs = 1e300; })), 'bad_message'),
    entry('startedAtUs not an integer', stringify(withSample((s) => { s.startedAtUs = 1.5; })), 'bad_message'),
    entry('lost != sent - received', stringify(withSample((s) => { s.lost = (s.lost as number) + 1; })), 'bad_message'),
    entry('rttsUs length != received', stringify(withSample((s) => { (s.rttsUs as number[]).push(1); })), 'bad_message'),
    entry('received > sent', stringify(withSample((s) => { s.sent = 1; s.received = 2; s.lost = -1; })), 'bad_message'),
    entry('RTT statistics null although packets arrived', stringify(withSample((s) => { s.received = 1; s.lost = (s.sent as number) - 1; s.rttsUs = [5]; s.rttMinUs = null; s.synced = false; s.fwdUs = s.revUs = []; })), 'bad_message'),
    entry('one-way delays on an unsynced train', stringify(withSample((s) => { s.synced = false; s.fwdUs = [1]; })), 'bad_message'),
    entry('synced train without one-way delays', stringify(withSample((s) => { s.received = 1; s.lost = (s.sent as number) - 1; s.rttsUs = [5]; s.rttMinUs = s.rttMedianUs = s.rttP99Us = s.rttMaxUs = 5; s.synced = true; s.fwdUs = s.revUs = []; })), 'bad_message'),
    entry('rttsUs with 10,001 elements', stringify(withSample((s) => { s.rttsUs = Array.from({ length: 10_001 }, () => 1); })), 'bad_message'),
    entry('dst unknown', stringify(withSample((s) => { s.dst = 'mars'; })), 'unknown_destination'),
    entry('dst is the probe itself', stringify(withSample((s) => { s.dst = 'alpha'; })), 'unknown_destination'),
    entry('dst empty', stringify(withSample((s) => { s.dst = ''; })), 'bad_message'),
    entry('dst with SQL', stringify(withSample((s) => { s.dst = "beta' OR '1'='1"; })), 'unknown_destination'),
    entry('duplicate trainIds in one batch', stringify(((b) => { const [s0, s1] = b.samples as JsonObject[]; s1!.trainId = s0!.trainId!; return b; })(good(2))), 'duplicate_train'),
    entry('trainId too short', stringify(withSample((s) => { s.trainId = 'short'; })), 'bad_message'),
    entry('trainId with SQL', stringify(withSample((s) => { s.trainId = "x'); DROP TABLE latency_trains; --"; })), 'bad_message'),
    entry('batchId with SQL', stringify({ ...good(), batchId: "b1'; DROP TABLE latency_trains; --" }), 'bad_message'),
    entry('batchId of 129 characters', stringify({ ...good(), batchId: 'b'.repeat(129) }), 'bad_message'),
    entry('engine unknown', stringify(withSample((s) => { s.engine = 'twamp'; })), 'bad_message'),
    entry('truncated JSON', stringify(good()).slice(0, 40), 'bad_json'),
    entry('trailing garbage', `${stringify(good())}}`, 'bad_json'),
    entry('duplicate key, the last one invalid', `${stringify(good()).slice(0, -1)},"batchId":""}`, 'bad_message'),
    entry('lone surrogate in batchId', stringify(good()).replace(/"batchId":"[^"]*"/, '"batchId":"b\\ud800"'), 'bad_message'),
    entry('invalid escape', stringify(good()).replace(/"batchId":"[^"]*"/, '"batchId":"\\x41"'), 'bad_json'),
    entry('raw control character in a string', stringify(good()).replace(/"batchId":"[^"]*"/, '"batchId":"a\u0001b"'), 'bad_json'),
    entry('unicode junk as type', stringify({ ...good(), type: '\u202ebatch\u0000😀' }), 'unknown_type'),
    entry('100,000-deep array as a sample', stringify(good()).replace('"samples":[', `"samples":[${'['.repeat(100_000)}${']'.repeat(100_000)},`), 'bad_message'),
    entry('100,000-deep array as the message', '['.repeat(100_000) + ']'.repeat(100_000), 'bad_message'),
    entry('random bytes (binary frame / raw body)', Buffer.from([0xff, 0x00, 0xfe, 0x7b, 0x22, 0x00, 0x80]), 'bad_message', 'bad_json'),
    entry('createdAtUs negative', stringify({ ...good(), createdAtUs: -1 }), 'bad_message'),
    entry('spool with an unknown field', stringify({ ...good(), spool: { batches: 0, bytes: 0, droppedTrains: 0, lost: 1 } }), 'bad_message'),
  ];

  it.each(corpus.map((c) => [c.name, c] as const))('corpus over WebSocket: %s', async (_name, c) => {
    const client = await helloClient(server, 'alpha');
    try {
      sendRaw(client, c.payload);
      const reply = await client.next<ErrorReply>(REPLY_BOUND_MS);
      recordWs({ mutator: `corpus:${c.name}`, payload: c.payload }, reply, 'ws-corpus');
      expect(reply).toMatchObject({ type: 'error', code: c.ws });
      expect(typeof reply.error === 'string' && reply.error.length > 0).toBe(true);
      expect(client.closed).toBeNull();
    } finally {
      client.ws.terminate();
    }
  });

  it.each(corpus.map((c) => [c.name, c] as const))('corpus over HTTP: %s', async (_name, c) => {
    const { status, body } = await postIngest(server, topo.tokens.alpha!, c.payload);
    recordHttp({ mutator: `corpus:${c.name}`, payload: c.payload }, status, body, 'http-corpus');
    expect(status).toBe(c.httpStatus);
    expect(body).toMatchObject({ type: 'error', code: c.http });
    expect(isErrorObject(body)).toBe(true);
  });

  // -------------------------------------------------------------------------
  // the fuzzer

  it(`WebSocket: ${WS_STREAMS * WS_PER_STREAM} mutated batches on authenticated connections, each refused with an error`, async () => {
    const start = sent.counts.get('ws-batch') ?? 0;
    await Promise.all(Array.from({ length: WS_STREAMS }, async (_, stream) => {
      const rng = root.fork(100 + stream);
      const centre = CENTRES[stream % CENTRES.length]!;
      const ids = new IdSource(`ws${stream}`);
      const client = await helloClient(server, centre);
      try {
        for (let i = 0; i < WS_PER_STREAM; i++) {
          const mutant = mutateBatch(rng, ids, who(centre), Date.now() * 1000);
          checkBase(mutant);
          sendRaw(client, mutant.payload);
          let reply: unknown;
          try {
            reply = await client.next(REPLY_BOUND_MS);
          } catch {
            failures.push(`ws-batch ${mutant.mutator}: no reply (connection ${client.closed ? `closed ${client.closed.code}` : 'open'}) to ${preview(mutant.payload)}`);
            return;
          }
          recordWs(mutant, reply, 'ws-batch');
        }
        expect(client.closed).toBeNull();
      } finally {
        client.ws.terminate();
      }
    }));
    expect(failures.slice(0, 20)).toEqual([]);
    expect((sent.counts.get('ws-batch') ?? 0) - start).toBe(WS_STREAMS * WS_PER_STREAM);
  });

  it(`WebSocket: ${HELLO_MESSAGES} mutated hellos on one unauthenticated connection, and ${AUTH_FAILING_HELLOS} hellos failing authentication`, async () => {
    const rng = root.fork(200);
    const alphaWho = who('alpha');
    const ids = new IdSource('hello');
    let client = await RawClient.open(server.wsUrl);
    try {
      for (let i = 0; i < HELLO_MESSAGES; i++) {
        let mutant: Mutant & { base: string };
        if (rng.chance(0.85)) mutant = mutateHello(rng, alphaWho, topo.tokens.alpha!);
        else {
          // Batch mutants before hello; a well-formed hello with a wrong token would end the connection.
          do mutant = mutateBatch(rng, ids, alphaWho, Date.now() * 1000);
          while (mutant.mutator === 'message.hello');
        }
        checkBase(mutant);
        sendRaw(client, mutant.payload);
        let reply: unknown;
        try {
          reply = await client.next(REPLY_BOUND_MS);
        } catch {
          failures.push(`ws-hello ${mutant.mutator}: no reply (connection ${client.closed ? `closed ${client.closed.code}` : 'open'}) to ${preview(mutant.payload)}`);
          break;
        }
        recordWs(mutant, reply, 'ws-hello');
        // Before hello only a hello-sized message is read: a larger one is answered too_large and the
        // connection closed (1009); the fuzz goes on on a fresh unauthenticated connection.
        const refused = reply as { code?: string; error?: string };
        if (refused.code === 'too_large' && refused.error?.startsWith('before hello')) {
          expect((await client.waitClosed(REPLY_BOUND_MS)).code).toBe(1009);
          client = await RawClient.open(server.wsUrl);
        }
      }
      // Still not authenticated: a valid batch is refused.
      const control = JSON.stringify(validBatch(rng, ids, alphaWho, Date.now() * 1000));
      client.send(control);
      const reply = await client.next(REPLY_BOUND_MS);
      recordWs({ mutator: 'control:valid-batch-before-hello', payload: control }, reply, 'ws-control');
      expect(reply).toMatchObject({ type: 'error', code: 'not_authenticated' });
      expect(client.closed).toBeNull();
    } finally {
      client.ws.terminate();
    }

    const others = (centre: string) => [...CENTRES.filter((c) => c !== centre).map((c) => topo.tokens[c]!), topo.operatorToken, topo.regulatorToken];
    for (let batch = 0; batch < AUTH_FAILING_HELLOS; batch += 10) {
      await Promise.all(Array.from({ length: Math.min(10, AUTH_FAILING_HELLOS - batch) }, async (_, k) => {
        const hrng = root.fork(300 + batch + k);
        const centre = CENTRES[(batch + k) % CENTRES.length]!;
        const mutant = authFailingHello(hrng, who(centre), { own: topo.tokens[centre]!, others: others(centre) });
        const c = await RawClient.open(server.wsUrl);
        try {
          sendRaw(c, mutant.payload);
          const reply = await c.next(REPLY_BOUND_MS);
          recordWs(mutant, reply, 'ws-auth');
          expect(reply, mutant.mutator).toMatchObject({ type: 'error', code: mutant.expect });
          if (mutant.expect !== 'bad_message') expect((await c.waitClosed(REPLY_BOUND_MS)).code).toBe(4401);
        } finally {
          c.ws.terminate();
        }
      }));
    }
    expect(failures.slice(0, 20)).toEqual([]);
  });

  it(`HTTP: ${HTTP_STREAMS * HTTP_PER_STREAM} mutated bodies POSTed to /v1/ingest, each refused with a 4xx error object`, async () => {
    await Promise.all(Array.from({ length: HTTP_STREAMS }, async (_, stream) => {
      const rng = root.fork(400 + stream);
      const centre = CENTRES[stream % CENTRES.length]!;
      const ids = new IdSource(`http${stream}`);
      for (let i = 0; i < HTTP_PER_STREAM; i++) {
        const mutant = mutateBatch(rng, ids, who(centre), Date.now() * 1000);
        checkBase(mutant);
        const { status, body } = await postIngest(server, topo.tokens[centre]!, mutant.payload);
        recordHttp(mutant, status, body, 'http');
      }
    }));
    expect(failures.slice(0, 20)).toEqual([]);
  });

  it('afterwards: /healthz answers, valid batches are acked on both transports, and the fuzz wrote zero rows', async () => {
    const health = await getJson<{ status: string }>(`${server.url}/healthz`);
    expect(health).toEqual({ status: 200, body: { status: 'ok' } });

    const rng = root.fork(500);
    const ids = new IdSource('valid');
    const client = await helloClient(server, 'alpha');
    const wsBatch = validBatch(rng, ids, who('alpha'), Date.now() * 1000, 3);
    client.send(wsBatch);
    expect(await client.next(REPLY_BOUND_MS)).toEqual({ type: 'ack', batchId: wsBatch.batchId, stored: 3 });
    validSamples += 3;
    client.ws.terminate();

    const httpBatch = validBatch(rng, ids, who('beta'), Date.now() * 1000, 2);
    const http = await postIngest(server, topo.tokens.beta!, JSON.stringify(httpBatch));
    expect(http).toEqual({ status: 200, body: { type: 'ack', batchId: httpBatch.batchId, stored: 2 } });
    validSamples += 2;

    expect(await rowCountQuery(server)).toBe(validSamples);

    // The collector's own count of refusals, by reason, agrees with what the clients saw.
    const metrics = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${topo.operatorToken}` } }).then((r) => r.text());
    const fromMetrics = new Tally();
    for (const m of metrics.matchAll(/^citymesh_rejected_messages_total\{reason="([a-z_]+)"\} (\d+)$/gm)) fromMetrics.add(m[1]!, Number(m[2]));
    expect(Object.fromEntries(fromMetrics.counts)).toEqual(Object.fromEntries(rejectedByCode.counts));

    const n = (k: string) => sent.counts.get(k) ?? 0;
    const fuzzedWs = n('ws-batch') + n('ws-hello') + n('ws-auth');
    const fuzzed = fuzzedWs + n('http');
    console.log([
      `fuzz seed ${SEED}`,
      `corpus: ${corpus.length} bad messages over WebSocket and over HTTP (${n('ws-corpus') + n('http-corpus')} sent)`,
      `fuzzed: ${fuzzed} messages: WebSocket ${fuzzedWs} (${n('ws-batch')} batches on authenticated connections, ` +
        `${n('ws-hello')} on an unauthenticated one, ${n('ws-auth')} hellos failing authentication), HTTP ${n('http')}`,
      `refused with an error object: ${rejectedByCode.total()} of ${sent.total()} bad messages (corpus + fuzz + ${n('ws-control')} control)`,
      'refusals by error code:',
      rejectedByCode.format(),
      'messages by mutator:',
      byMutator.format(),
      `rows in latency_trains: ${await rowCountQuery(server)} = the ${validSamples} samples of the 2 valid batches; 0 from bad input`,
    ].join('\n'));
    expect(fuzzed).toBeGreaterThanOrEqual(10_000);
    expect(failures).toEqual([]);
  });

});

describe('collector limits at their defaults, and storage edge cases', () => {
  const limitsTopo = testTopology(['delta', 'echo'], '127.0.6');
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(limitsTopo.topology);
  });
  afterAll(async () => {
    // Bounded: if the crash test below wedged a connection, stop() would wait for it forever.
    const stopped = await Promise.race([server?.stop().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5_000).unref())]);
    if (!stopped) console.warn('server did not stop within 5 s (a wedged probe connection); left to process exit');
  });

  async function helloAs(centre: string): Promise<RawClient> {
    const client = await RawClient.open(server.wsUrl);
    client.send({ type: 'hello', centre, token: limitsTopo.tokens[centre], version: 'limits' });
    expect(await client.next(REPLY_BOUND_MS)).toMatchObject({ type: 'plan', centre });
    return client;
  }

  it('a connection sending faster than 50 msg/s beyond a burst of 200 is answered rate_limited, one reply per message', async () => {
    const client = await helloAs('delta');
    try {
      const n = 1000;
      // Sent back to back: far above 50/s whatever the machine, so the bucket must run dry.
      for (let i = 0; i < n; i++) client.send('{}');
      const codes = new Tally();
      for (let i = 0; i < n; i++) {
        const reply = await client.next<ErrorReply>(REPLY_BOUND_MS);
        expect(reply.type).toBe('error');
        expect(isErrorObject(reply)).toBe(true);
        codes.add(String(reply.code));
      }
      console.log(`rate limit: ${n} messages back to back ->\n${codes.format()}`);
      expect(codes.counts.get('rate_limited') ?? 0).toBeGreaterThan(0);
      // The burst of 200 passed through, less the token the hello took.
      expect(codes.counts.get('unknown_type') ?? 0).toBeGreaterThanOrEqual(199);
      expect(client.closed).toBeNull();
    } finally {
      client.ws.terminate();
    }
  });

  it('a third connection for one centre is refused with too_many_connections', async () => {
    const first = await helloAs('echo');
    const second = await helloAs('echo');
    const third = await RawClient.open(server.wsUrl);
    try {
      third.send({ type: 'hello', centre: 'echo', token: limitsTopo.tokens.echo, version: 'limits' });
      expect(await third.next(REPLY_BOUND_MS)).toMatchObject({ type: 'error', code: 'too_many_connections' });
      expect((await third.waitClosed(REPLY_BOUND_MS)).code).toBe(4429);
    } finally {
      for (const c of [first, second, third]) c.ws.terminate();
    }
  });

  it('a message over 4 MiB: HTTP answers 413 too_large; the WebSocket is closed with 1009 (message too big)', async () => {
    const big = JSON.stringify({ type: 'batch', batchId: 'big', samples: [], pad: 'x'.repeat(4 * 1024 * 1024) });
    const http = await postIngest(server, limitsTopo.tokens.delta!, big);
    expect(http.status).toBe(413);
    expect(http.body).toMatchObject({ error: 'too_large' });

    const client = await helloAs('delta');
    client.ws.send(big);
    expect((await client.waitClosed(REPLY_BOUND_MS)).code).toBe(1009);
    expect((await getJson<{ status: string }>(`${server.url}/healthz`)).body.status).toBe('ok');
  });

  it('a train the protocol accepts is either refused as invalid or really stored: an ack never hides a dropped row', async () => {
    // startedAtUs is only checked to be a positive safe integer; these are all accepted by the schema.
    const rng = new Rng(SEED ^ 0x5eed);
    const ids = new IdSource('edge');
    const cases: { name: string; startedAtUs: number }[] = [
      { name: '1970-01-01 (probe clock never set)', startedAtUs: 1_000_000 },
      { name: 'year 2200', startedAtUs: Date.UTC(2200, 0, 1) * 1000 },
      { name: 'largest safe integer (year 2255)', startedAtUs: Number.MAX_SAFE_INTEGER },
    ];
    const outcomes: string[] = [];
    const problems: string[] = [];
    for (const c of cases) {
      const batch = validBatch(rng, ids, { centre: 'delta', peers: ['echo'], all: ['delta', 'echo'] }, Date.now() * 1000, 1);
      const sample = (batch.samples as JsonObject[])[0]!;
      sample.startedAtUs = c.startedAtUs;
      const { status, body } = await postIngest(server, limitsTopo.tokens.delta!, JSON.stringify(batch));
      const stored = await server.store.client
        .query({ query: 'SELECT count() AS n FROM latency_trains WHERE train_id = {id:String}', query_params: { id: sample.trainId as string }, format: 'JSONEachRow' })
        .then((r) => r.json<{ n: number }>())
        .then((rows) => Number(rows[0]!.n));
      outcomes.push(`${c.name}: HTTP ${status} ${JSON.stringify(body)}, rows stored ${stored}`);
      if (status === 200 && stored !== 1) problems.push(`${c.name}: acknowledged ${JSON.stringify(body)} but ${stored} rows stored`);
      // A refusal must be permanent (4xx), not "store unavailable, retry forever".
      if (status !== 200 && (status < 400 || status >= 500)) problems.push(`${c.name}: answered ${status} ${JSON.stringify(body)}`);
    }
    console.log(`implausible timestamps:\n  ${outcomes.join('\n  ')}`);
    expect(problems).toEqual([]);
  });

  it('a batch whose trains span more than 100 months is refused as invalid, not answered store_unavailable (a batch the probe would retry forever)', async () => {
    const rng = new Rng(SEED ^ 0xbad);
    const ids = new IdSource('months');
    const batch = validBatch(rng, ids, { centre: 'echo', peers: ['delta'], all: ['delta', 'echo'] }, Date.now() * 1000, 101);
    (batch.samples as JsonObject[]).forEach((s, i) => {
      s.startedAtUs = Date.UTC(2018, i, 15) * 1000;
    });
    const { status, body } = await postIngest(server, limitsTopo.tokens.echo!, JSON.stringify(batch));
    console.log(`101 months in one batch: HTTP ${status} ${JSON.stringify(body)}`);
    expect(status === 200 || (status >= 400 && status < 500), `answered ${status} ${JSON.stringify(body)}`).toBe(true);
  });

  it('the valid sample builder used by the fuzzer produces batches the collector acknowledges', async () => {
    // Guards the fuzzer itself: its base messages are valid, so each mutant differs from a valid message by the mutation.
    const rng = new Rng(SEED);
    const ids = new IdSource('base');
    for (let i = 0; i < 20; i++) {
      const batch = validBatch(rng, ids, { centre: 'delta', peers: ['echo'], all: ['delta', 'echo'] }, Date.now() * 1000);
      const { status, body } = await postIngest(server, limitsTopo.tokens.delta!, JSON.stringify(batch));
      expect({ status, body }).toEqual({ status: 200, body: { type: 'ack', batchId: batch.batchId, stored: (batch.samples as unknown[]).length } });
    }
    expect(validSample(rng, 'x'.repeat(8), 'echo', Date.now() * 1000)).toHaveProperty('trainId');
  });

  // Runs last in the file: today the collector throws on it, which outside vitest kills the
  // server process and here leaves that connection's parser wedged (the server cannot stop cleanly).
  it('a message whose type is a 10,000-deep array (20 KB) is refused with an error, on both transports', async () => {
    const depth = 10_000;
    const payload = `{"type":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const problems: string[] = [];

    const http = await postIngest(server, limitsTopo.tokens.delta!, payload);
    if (http.status !== 400 || !isErrorObject(http.body)) problems.push(`HTTP: ${http.status} ${JSON.stringify(http.body)}`);

    const client = await RawClient.open(server.wsUrl); // no hello needed to reach the parser
    try {
      sendRaw(client, payload);
      const bound = 5_000; // a healthy collector answers at once; a wedged one never does
      const reply = await client.next<ErrorReply>(bound).catch(() => null);
      if (!isErrorObject(reply) || reply.type !== 'error') problems.push(`WebSocket: ${reply === null ? `no reply within ${bound} ms (the collector threw)` : JSON.stringify(reply)}`);
    } finally {
      client.ws.terminate();
    }
    const health = await getJson<{ status: string }>(`${server.url}/healthz`);
    if (health.body.status !== 'ok') problems.push(`healthz: ${JSON.stringify(health)}`);
    expect(problems).toEqual([]);
  });
});

describe('metrics endpoint query fuzzing: /metrics/network?format=… and friends', () => {
  const metricsTopo = testTopology(['kilo', 'lima'], '127.0.6');
  let server: TestServer;
  const QUERIES = 600;

  beforeAll(async () => {
    server = await startTestServer(metricsTopo.topology, { rateLimit: { perSecond: 1e6, burst: 1e6 } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** A percent-encoded value: valid and invalid UTF-8, lone-surrogate encodings, NUL, bare %, the two real formats. */
  function junkValue(rng: Rng): string {
    const pieces = [
      'prometheus', 'openmetrics', 'json', '', '%00', '%', '%E', '%ED%A0%80', '%ED%BF%BF', '%F0%9F', '%F0%9F%92%A3', '%uD800', '%C0%AF',
      '%E2%80%AE', '+', '%20', '%0D%0A', '%3D', '%26', '..%2F', "'", '"', '<script>', '%FF%FE',
    ];
    let out = '';
    for (let i = rng.int(1, 4); i > 0; i--) out += rng.pick(pieces);
    if (rng.next() < 0.1) out += 'z'.repeat(rng.int(100, 3000));
    return out;
  }

  it(`${QUERIES} random query strings and Accept headers: 200 or a 400 naming format, never a 5xx or a hang`, async () => {
    const rng = root.fork(17);
    const keys = ['format', 'format', 'format', 'Format', 'formats', 'format[]', 'fmt', 'target', '', '__proto__', 'format%00', '%ED%A0%80'];
    const accepts = [undefined, 'application/openmetrics-text;version=1.0.0', 'text/plain;q=0.5,application/openmetrics-text;q=NaN', ';;,;q=', '*/*;q=1e999'];
    const statuses = new Tally();
    const failures: string[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const params = Array.from({ length: rng.int(0, 6) }, () => `${rng.pick(keys)}=${junkValue(rng)}`);
      const query = params.join('&');
      const accept = rng.pick(accepts);
      const headers: Record<string, string> = { authorization: `Bearer ${metricsTopo.operatorToken}` };
      if (accept !== undefined) headers.accept = accept;
      const r = await fetch(`${server.url}/metrics/network?${query}`, { headers, signal: AbortSignal.timeout(REPLY_BOUND_MS) });
      const text = await r.text();
      statuses.add(String(r.status));
      const formatGiven = params.some((p) => p.startsWith('format='));
      if (r.status === 200) {
        if (!/^(text\/plain; version=0\.0\.4|application\/openmetrics-text; version=1\.0\.0)/.test(r.headers.get('content-type') ?? '')) failures.push(`${query}: 200 as ${r.headers.get('content-type')}`);
      } else if (r.status === 400 && formatGiven) {
        const body = JSON.parse(text) as { error?: string; reason?: string };
        if (body.error !== 'bad_request' || !body.reason?.startsWith('format: ') || body.reason.length > 200) failures.push(`${query.slice(0, 100)}: ${text.slice(0, 200)}`);
      } else {
        failures.push(`${query.slice(0, 100)}: ${r.status} ${text.slice(0, 200)}`);
      }
      if (failures.length > 5) break;
    }
    console.log(`metrics query fuzz, answers by status:\n${statuses.format()}`);
    expect(failures).toEqual([]);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  }, 120_000);
});
