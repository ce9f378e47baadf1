// Sequential lock cycles with node-redlock, printed as cycle_profile prints
// ours, for the side-by-side of compare.sh (see README.md here).
//
//   node cycle.mjs --urls redis://127.0.0.1:7001,... [--cycles N] [--pause-pid PID]
//
// One attempt per cycle (retryCount 0, as our try_acquire and the benches'
// rslock client), TTL 10 s, fresh resource names, 200 cycles of warm-up.
// --pause-pid: SIGSTOP that process (a master the caller started) after the
// warm-up, for the paused-master scenario; the caller resumes it.
//
//   node cycle.mjs --urls ... --contend library|jitter [--tasks T] [--secs S]
//
// Contention instead (scenarios E and E2 of the targets): T async tasks
// (default 16) take one resource in turn for S seconds (default 3), with
// node-redlock's own retry at its defaults (library) or one attempt per
// call and 0-10 ms of the caller's jitter after a refusal (jitter).

import Redis from "ioredis";
import Redlock from "redlock";

function usage(problem) {
  console.error(`cycle.mjs: ${problem}`);
  console.error("usage: node cycle.mjs --urls URL,.. [--cycles N] [--pause-pid PID]");
  console.error("       node cycle.mjs --urls URL,.. --contend library|jitter [--tasks T] [--secs S]");
  process.exit(2);
}

let urls = [];
let cycles = 5000;
let pausePid = 0;
let contend = "";
let tasks = 16;
let secs = 3;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const [flag, value] = [args[i], args[i + 1]];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === "--urls") urls = value.split(",");
  else if (flag === "--cycles") cycles = Number.parseInt(value, 10);
  else if (flag === "--pause-pid") pausePid = Number.parseInt(value, 10);
  else if (flag === "--contend") contend = value;
  else if (flag === "--tasks") tasks = Number.parseInt(value, 10);
  else if (flag === "--secs") secs = Number.parseFloat(value);
  else usage(`unknown argument ${flag}`);
}
if (urls.length === 0) usage("--urls is required");
if (!Number.isInteger(cycles) || cycles < 1) usage("--cycles N, N >= 1");
if (!Number.isInteger(pausePid) || pausePid < 0) usage("--pause-pid PID");
if (!["", "library", "jitter"].includes(contend)) usage("--contend library|jitter");
if (!Number.isInteger(tasks) || tasks < 1) usage("--tasks T, T >= 1");
if (!(secs > 0)) usage("--secs S, S > 0");

const clients = urls.map((u) => new Redis(u, { lazyConnect: false }));
const redlock = new Redlock(clients, { retryCount: 0 });
// A paused master never answers: its votes stay pending and must not crash us.
redlock.on("error", () => {});

const run = `${process.pid}-${Date.now()}`;
if (contend !== "") await contention();
async function cycle(i) {
  const t0 = process.hrtime.bigint();
  const lock = await redlock.acquire([`bench:${run}:node:${i}`], 10_000);
  const t1 = process.hrtime.bigint();
  await lock.release();
  const t2 = process.hrtime.bigint();
  return [Number(t1 - t0) / 1000, Number(t2 - t1) / 1000];
}

function p50(values) {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.floor((v.length - 1) / 2)];
}

for (let i = 0; i < 200; i++) await cycle(-1 - i);
if (pausePid > 0) process.kill(pausePid, "SIGSTOP");
const acquire = [];
const release = [];
const total = [];
const cpu0 = process.cpuUsage();
const w0 = process.hrtime.bigint();
let failed = 0;
for (let i = 0; i < cycles; i++) {
  try {
    const [a, r] = await cycle(i);
    acquire.push(a);
    release.push(r);
    total.push(a + r);
  } catch {
    failed += 1;
  }
}
const wall = Number(process.hrtime.bigint() - w0) / 1e9;
const cpu = process.cpuUsage(cpu0);
const done = total.length;
console.log(
  `node-redlock ${urls.length} master(s), 1 task(s): ${done} cycles in ${wall.toFixed(3)} s, ` +
    `${(done / wall).toFixed(1)} cycles/s, p50 acquire ${p50(acquire).toFixed(0)} / ` +
    `release ${p50(release).toFixed(0)} / cycle ${p50(total).toFixed(0)} µs, ` +
    `client CPU ${((cpu.user + cpu.system) / Math.max(done, 1)).toFixed(1)} µs/cycle` +
    (failed > 0 ? `, ${failed} failed` : ""),
);
// A paused master's commands never end: leave without waiting for them.
process.exit(0);

// Scenarios E and E2: `tasks` tasks on one resource for `secs` seconds.
async function contention() {
  const resource = `bench:${run}:node:contended`;
  // One attempt per call for the caller's jitter; node-redlock's defaults
  // (10 retries, 200 ms apart, up to 200 ms of jitter) for its own retry.
  const once = new Redlock(clients, { retryCount: 0 });
  once.on("error", () => {});
  const perTask = new Array(tasks).fill(0);
  let held = false;
  let violations = 0;
  let stop = false;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  async function task(me) {
    while (!stop) {
      let lock;
      try {
        lock = contend === "library"
          ? await redlock.acquire([resource], 10_000, { retryCount: 10 })
          : await once.acquire([resource], 10_000);
      } catch {
        if (contend === "jitter") {
          await new Promise((r) => setTimeout(r, Math.random() * 10));
        }
        continue;
      }
      if (held) violations += 1;
      held = true;
      // Let the other tasks run while the lock is held, as the Rust side does.
      await new Promise((r) => setImmediate(r));
      held = false;
      try {
        await lock.release();
      } catch {
        // Released on fewer than a quorum: the TTL ends it; count the section.
      }
      if (!stop) perTask[me] += 1;
    }
  }
  // Not awaited: when the time is up, tasks still in a retry are left behind.
  for (let me = 0; me < tasks; me++) void task(me);
  await new Promise((r) => setTimeout(r, secs * 1000));
  stop = true;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const total = perTask.reduce((a, b) => a + b, 0);
  console.log(
    `node-redlock ${urls.length} master(s), ${tasks} tasks, ${contend}: ` +
      `${(total / elapsed).toFixed(0)} CS/s, fewest/most ${Math.min(...perTask)}/${Math.max(...perTask)}, ` +
      `violations ${violations}, client CPU ${((cpu.user + cpu.system) / Math.max(total, 1)).toFixed(1)} µs/CS`,
  );
  process.exit(0);
}
