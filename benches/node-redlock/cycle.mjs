// Sequential lock cycles with node-redlock, printed as cycle_profile prints
// ours, for the side-by-side of compare.sh (see README.md here).
//
//   node cycle.mjs --urls redis://127.0.0.1:7001,... [--cycles N] [--pause-pid PID]
//
// One attempt per cycle (retryCount 0, as our try_acquire and the benches'
// rslock client), TTL 10 s, fresh resource names, 200 cycles of warm-up.
// --pause-pid: SIGSTOP that process (a master the caller started) after the
// warm-up, for the paused-master scenario; the caller resumes it.

import Redis from "ioredis";
import Redlock from "redlock";

function usage(problem) {
  console.error(`cycle.mjs: ${problem}`);
  console.error("usage: node cycle.mjs --urls URL,.. [--cycles N] [--pause-pid PID]");
  process.exit(2);
}

let urls = [];
let cycles = 5000;
let pausePid = 0;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const [flag, value] = [args[i], args[i + 1]];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === "--urls") urls = value.split(",");
  else if (flag === "--cycles") cycles = Number.parseInt(value, 10);
  else if (flag === "--pause-pid") pausePid = Number.parseInt(value, 10);
  else usage(`unknown argument ${flag}`);
}
if (urls.length === 0) usage("--urls is required");
if (!Number.isInteger(cycles) || cycles < 1) usage("--cycles N, N >= 1");
if (!Number.isInteger(pausePid) || pausePid < 0) usage("--pause-pid PID");

const clients = urls.map((u) => new Redis(u, { lazyConnect: false }));
const redlock = new Redlock(clients, { retryCount: 0 });
// A paused master never answers: its votes stay pending and must not crash us.
redlock.on("error", () => {});

const run = `${process.pid}-${Date.now()}`;
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
