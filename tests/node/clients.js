// ioredis and node-redis against a repram-resp node: node clients.js PORT
// Prints "ok <check>" per check; exits 0 when all pass, 1 on the first failure.
// Run by tests/test_node_clients.py (npm ci in this folder first).
"use strict";

const assert = require("node:assert/strict");
const Redis = require("ioredis");
const { createClient } = require("redis");

const port = Number(process.argv[2]);
const host = "127.0.0.1";
const guard = setTimeout(() => { console.error("timed out"); process.exit(1); }, 30000);

function ok(name) { console.log("ok " + name); }

async function until(pred, what, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function ioredisChecks() {
  const r = new Redis(port, host);                 // defaults: RESP2, auto-pipelining off
  assert.equal(await r.ping(), "PONG");
  ok("ioredis connect with defaults");

  assert.equal(await r.set("io:k", "v", "EX", 10), "OK");
  assert.equal(await r.get("io:k"), "v");
  assert.equal(await r.ttl("io:k"), 10);
  ok("ioredis SET EX / GET");

  for (let i = 0; i < 25; i++) await r.set("io:scan:" + String(i).padStart(2, "0"), i, "EX", 60);
  const seen = [];
  await new Promise((resolve, reject) => {
    const s = r.scanStream({ match: "io:scan:*", count: 7 });
    s.on("data", (keys) => seen.push(...keys));
    s.on("end", resolve);
    s.on("error", reject);
  });
  assert.equal(seen.length, 25);
  assert.deepEqual(seen, [...seen].sort());        // REPRAM's SCAN is sorted
  ok("ioredis scanStream");

  const res = await r.pipeline().set("io:p", "1", "PX", 5000).get("io:p").exists("io:p", "io:none").exec();
  assert.deepEqual(res, [[null, "OK"], [null, "1"], [null, 1]]);
  ok("ioredis pipeline");

  await assert.rejects(r.multi().set("io:m", "1", "EX", 10).del("io:m").exec(), /EXECABORT/);
  assert.equal(await r.exists("io:m"), 0);         // nothing of the transaction applied
  ok("ioredis MULTI with a refused command");

  const out = await r.multi().mset("io:d1", "a", "io:d2", "b").expire("io:d1", 300).expire("io:d2", 300).exec();
  assert.deepEqual(out, [[null, "OK"], [null, 1], [null, 1]]);
  assert.equal(await r.ttl("io:d2"), 300);
  ok("ioredis MULTI MSET + EXPIRE (set_many)");

  const sub = new Redis(port, host);
  await r.config("SET", "notify-keyspace-events", "KEA");
  const events = [];
  sub.on("pmessage", (_p, channel, key) => { if (key === "io:hb") events.push(channel.split(":").pop()); });
  await sub.psubscribe("__keyevent@0__:*");
  await r.set("io:hb", "alive", "PX", 40);
  await until(() => events.length >= 3, "set, expire, expired");
  assert.deepEqual(events, ["set", "expire", "expired"]);
  await r.config("SET", "notify-keyspace-events", "");
  ok("ioredis keyspace events");
  sub.disconnect();
  r.disconnect();
}

async function nodeRedisChecks() {
  const r = createClient({ socket: { host, port } });
  r.on("error", (e) => { console.error("node-redis error", e); });
  await r.connect();
  assert.equal(await r.ping(), "PONG");
  ok("node-redis connect with defaults");

  assert.equal(await r.set("nr:k", "v", { EX: 10 }), "OK");
  assert.equal(await r.get("nr:k"), "v");
  ok("node-redis SET EX / GET");

  for (let i = 0; i < 12; i++) await r.set("nr:scan:" + i, "x", { EX: 60 });
  const keys = [];
  for await (const batch of r.scanIterator({ MATCH: "nr:scan:*", COUNT: 5 })) keys.push(...batch);
  assert.equal(keys.length, 12);
  ok("node-redis scanIterator");

  const piped = await r.multi().set("nr:p", "1", { PX: 5000 }).get("nr:p").execAsPipeline();
  assert.deepEqual(piped, ["OK", "1"]);
  ok("node-redis pipeline");

  await assert.rejects(r.multi().set("nr:m", "1", { EX: 10 }).del("nr:m").exec());
  assert.equal(await r.exists("nr:m"), 0);
  ok("node-redis MULTI with a refused command");

  const sub = r.duplicate();
  await sub.connect();
  await r.configSet("notify-keyspace-events", "Eg$x");
  const events = [];
  await sub.pSubscribe("__keyevent@0__:*", (key, channel) => {
    if (key === "nr:hb") events.push(channel.split(":").pop());
  });
  await r.set("nr:hb", "alive", { PX: 40 });
  await until(() => events.length >= 3, "set, expire, expired");
  assert.deepEqual(events, ["set", "expire", "expired"]);
  await r.configSet("notify-keyspace-events", "");
  ok("node-redis keyspace events");
  await sub.quit();

  // Client-side caching: RESP3 + CLIENT TRACKING, invalidated on overwrite and on expiry.
  const cached = createClient({ socket: { host, port }, RESP: 3, clientSideCache: { ttl: 0, maxEntries: 0 } });
  await cached.connect();
  await r.set("nr:cfg", "v1", { EX: 60 });
  assert.equal(await cached.get("nr:cfg"), "v1");
  assert.equal(await cached.get("nr:cfg"), "v1");
  assert.equal(cached.clientSideCache.stats().hitCount, 1);   // the second GET was local
  await r.set("nr:cfg", "v2", { EX: 60 });
  await until(async () => (await cached.get("nr:cfg")) === "v2", "overwrite invalidated");
  await r.set("nr:brief", "x", { PX: 40 });
  assert.equal(await cached.get("nr:brief"), "x");
  await until(async () => (await cached.get("nr:brief")) === null, "expiry invalidated");
  ok("node-redis clientSideCache");
  await cached.quit();
  await r.quit();
}

(async () => {
  try {
    await ioredisChecks();
    await nodeRedisChecks();
    console.log("all node client checks passed");
    clearTimeout(guard);
  } catch (e) {
    console.error("FAILED:", e && e.stack ? e.stack : e);
    process.exit(1);
  }
})();
