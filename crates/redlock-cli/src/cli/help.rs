//! The help texts of `redlock --help` and its subcommands: long prose,
//! kept apart from the clap types in the parent module that show it.

pub(super) const ABOUT: &str =
    "A distributed lock over N independent Redis masters (Redlock): run a cron \
job on one host at a time, inspect or release a lock, and measure one Redis against a quorum.";

pub(super) const LONG_ABOUT: &str = "\
A distributed lock over N independent Redis masters (the Redlock algorithm).

A lock is the key PREFIX+NAME set to a fresh random 128-bit token with a TTL, \
only if absent, on every master in parallel. It is held when a quorum \
(a majority, floor(N/2)+1) of the masters set it, and it is trusted until \
start + TTL - drift, where `start` is read before the first command is sent \
and drift = TTL * 0.01 + 2 ms. No TTL may exceed --max-ttl (default 60s), \
the deployment-wide maximum and restart-guard window that every client of the \
same masters must share. Losing a minority of the masters neither loses \
the lock nor lets a second holder in; with a single master, that master is a \
single point of failure.

Masters come from --masters (or REDLOCK_MASTERS), or from --spawn N, which \
starts N throwaway redis-server processes on free loopback ports for trying \
things out, and stops them on exit (also on Ctrl-C and errors).";

pub(super) const EXAMPLES: &str = "\
Examples:
  # On every host, from cron: run the nightly report on one host at a time.
  redlock --masters redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379 \\
      exec --resource nightly-report --ttl 1m -- /usr/local/bin/nightly-report

  # Try it with no Redis of your own (3 throwaway local masters):
  redlock --spawn 3 exec --resource demo --ttl 10s --fence -- sh -c 'echo fence $REDLOCK_FENCE'

  # One master vs a quorum of five, on this machine:
  redlock bench --spawn 5

  # Who holds a lock right now, master by master:
  export REDLOCK_MASTERS=redis://a:6379,redis://b:6379,redis://c:6379
  redlock inspect --resource nightly-report

  # Remove a lock whose holder is gone (see `redlock unlock --help` first):
  redlock unlock --resource nightly-report --force";

pub(super) const EXEC_LONG_ABOUT: &str = "\
Acquire the lock, run CMD with stdin/stdout/stderr passed through, keep the \
lock extended while CMD runs, release it when CMD exits, and exit with CMD's \
own status: a distributed flock(1).

CMD is the words after `--` (or from the first word without a dash), or \
`sh -c STRING` with -c STRING (like flock -c). An unknown option before CMD \
is a usage error (64), and nothing runs.

Without --wait there is one attempt; with it, attempts are retried (with \
jittered backoff) until the deadline, or without limit with --wait forever. \
If the lock is not acquired, redlock prints why on one line, does not run \
CMD, and exits 75, or --conflict-exit-code N when another owner holds it \
(like flock -E; with -q it then says nothing; masters that fail are still \
reported, with 75). When another owner holds it, the line says who: every \
lock records its holder's host, pid, start time and --label, e.g.
  redlock: resource \"nightly\" is held by pid 4242 on web-1 (\"nightly\") since 12s ago, 18s left, on 3/3 masters

While CMD runs the lock is extended before its validity runs low. If it is \
lost anyway (another owner took it, or a majority of masters stopped answering \
until the validity ran out), redlock says so on stderr, sends CMD SIGTERM, \
then SIGKILL after --kill-after, and exits 76: the work may have run without \
the lock near its end, so treat 76 (or --lost-exit-code N) as a failure. It \
also exits 76, without starting CMD, if the lock is lost before CMD would \
start, and if CMD's exit is only noticed after the lock's validity ended. \
All this needs redlock itself to run: while redlock is stopped (SIGSTOP, a \
paused VM) nothing extends the lock and nothing tells CMD, so protect what \
CMD writes with --fence: pass $REDLOCK_FENCE with every write and have the \
resource refuse a fence lower than the highest it has seen (docs/safety.md).

CMD runs in a process group of its own, and every signal redlock sends \
goes to the whole group (a lost lock stops `sh -c 'job; true'` and its job). \
SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 received by redlock are \
forwarded to CMD's group; redlock then waits for CMD to exit, releases the \
lock, and exits with CMD's status (128+N if CMD died of signal N). In the \
foreground of a terminal, redlock hands the terminal to CMD's group as a \
shell does for a job: CMD can read it, a Ctrl-C reaches CMD once (not \
redlock), and Ctrl-Z stops CMD and redlock together (fg resumes both; the \
lock is not extended while stopped). On Linux, CMD gets SIGTERM if redlock \
itself is killed with SIGKILL, since nothing would keep its lock then.

The lock is released on every exit path redlock controls: CMD exits, CMD is \
killed, CMD cannot be started, redlock is signalled. (After SIGKILL of redlock \
the keys expire with the TTL.)

Environment of CMD:
  REDLOCK_TOKEN            the lock's token: 32 hex digits, then who holds it
                           (HOST PID SINCE-UNIX-MS [LABEL]); a secret
  REDLOCK_RESOURCE         the resource name
  REDLOCK_KEY              the key on each master (PREFIX+NAME)
  REDLOCK_TTL_MS           the TTL in milliseconds
  REDLOCK_MASTERS          the master URLs in use (with --spawn: the spawned ones),
                           passwords replaced by *** (CMD never gets a credential)
  REDLOCK_FENCE            with --fence: the lock's fencing token, a decimal number
                           greater than every earlier fenced holder's of NAME
                           (without --fence it is removed from CMD's environment)

With fewer than three masters, or an even number, exec warns once on stderr \
(not with -q): 2 of 2 tolerates no failure; 4 tolerate no more than 3.";

pub(super) const EXEC_EXAMPLES: &str = "\
Examples:
  # crontab line on every host; -q: a busy lock is not worth a mail
  */5 * * * * redlock exec -q --resource sync --ttl 1m -- /opt/sync.sh

  # wait up to 30 s for the lock instead of giving up at once:
  redlock exec --resource deploy --ttl 1m --wait 30s -- ./deploy.sh

  # wait as long as it takes; a shell string, as with flock -c:
  redlock exec --resource backup --ttl 1m --wait forever -c 'pg_dump db | gzip > db.gz'

  # a busy lock is a quiet success (flock -n -E 0); a lost one exits 3:
  redlock exec -q --resource sync --ttl 30s --conflict-exit-code 0 --lost-exit-code 3 -- ./sync.sh

  # a TTL above 60s needs a larger --max-ttl, the same on every client:
  export REDLOCK_MAX_TTL=5m     # in the environment of every client of these masters
  redlock exec --resource report --ttl 3m -- ./report.sh";

pub(super) const BENCH_LONG_ABOUT: &str = "\
Run the same workloads against a single master (the first one given) and \
against the quorum of all given masters, in one run, and print a table of \
latencies (p50, p90, p99, max, in microseconds) and rates. With 3 masters \
or more, the quorum then runs with its last master slowed, then paused.

Workloads, each measured for both configurations:
  sequential   one task: acquire (one attempt) + release on a fresh resource,
               --iterations times; acquire, release and full-cycle latency,
               cycles/s
  fenced       the same on one resource, each lock with a fencing token
               (a second round trip to a quorum); the fence counter of that
               resource is removed at the end
  concurrent   --concurrency tasks, each cycling on its own resource,
               --iterations cycles in total
  contended    --concurrency tasks on one resource, each acquiring, releasing
               and asking again at once, retrying with the default jittered
               backoff, until --iterations acquisitions in total: the wait
               from calling acquire to holding the lock, acquisitions per
               second, and hand-offs (the lock going to another task) per
               second with the wait of those acquisitions
  queued       --contenders tasks on one resource through the library's own
               acquire (redlock-tokio LockManager: retry policy and the
               in-process FIFO queue), until --iterations critical sections
               in total: critical sections per second (CS/s), the wait, and
               fairness (fewest / most critical sections of any task)

Fault scenarios (quorum only, 3 masters or more; --no-faults skips them),
sequential cycles as above, each on connections of its own:
  slowed       the last master reached through an in-process TCP proxy that
               delays every chunk by --slow-by each way (and by up to two
               steps more of a grid of 5% of it, at most 1 ms a step: chunks
               due together go out at once, and a busy connection is read
               once a step)
  paused       the last master stopped with SIGSTOP for the scenario and
               resumed with SIGCONT after (also on Ctrl-C); only a
               redis-server this redlock started, so only with --spawn
Each is capped at 30 s.

A progress bar is drawn on stderr when it is a terminal (never with --json).

--json prints one JSON document on stdout instead of the table (schema 1):
  {
    \"schema\": 1,
    \"masters\": [\"127.0.0.1:7001\", ...],   addresses, in order
    \"iterations\": 2000, \"warmup\": 100, \"concurrency\": 8,
    \"contenders\": 16, \"ttl_ms\": 10000, \"master_timeout_ms\": 50,
    \"client\": \"redis-rs\", \"runtime\": \"multi\",   --client, --runtime
    \"single\": CONFIG,                       the first master alone (N=1)
    \"quorum\": CONFIG,                       all masters
    \"faults\": FAULTS or null,
    \"faults_skipped\": why faults is null, or null
  }
  CONFIG    = { \"masters\": N, \"quorum\": Q,
                \"sequential\": WORKLOAD, \"fenced\": WORKLOAD,
                \"concurrent\": WORKLOAD, \"contended\": CONTENDED,
                \"queued\": QUEUED }
  WORKLOAD  = { \"tasks\", \"cycles\", \"errors\", \"elapsed_ms\", \"cycles_per_sec\",
                \"client_cpu_us_per_cycle\",
                \"acquire\": LATENCY, \"release\": LATENCY, \"cycle\": LATENCY }
  CONTENDED = { \"tasks\", \"acquisitions\", \"errors\", \"elapsed_ms\",
                \"acquisitions_per_sec\", \"client_cpu_us_per_acquisition\",
                \"owner_changes\", \"handoffs_per_sec\",
                \"wait\": LATENCY, \"handoff_wait\": LATENCY, \"release\": LATENCY }
  QUEUED    = { \"tasks\", \"critical_sections\", \"errors\", \"elapsed_ms\",
                \"critical_sections_per_sec\",
                \"client_cpu_us_per_critical_section\",
                \"per_task_min\", \"per_task_max\", \"fairness\" (min/max),
                \"owner_changes\", \"exclusion_violations\" (always 0),
                \"wait\": LATENCY, \"release\": LATENCY }
  FAULTS    = { \"master\": address of the slowed/paused master,
                \"slow_one_way_ms\",
                \"slowed\": WORKLOAD or null, \"slowed_skipped\": why, or null,
                \"paused\": WORKLOAD or null, \"paused_skipped\": why, or null }
  LATENCY   = { \"count\", \"min_us\", \"p50_us\", \"p90_us\", \"p99_us\",
                \"max_us\", \"mean_us\" }   (microseconds)
client_cpu_us_* is the CPU time (user + system) of redlock itself per \
cycle: what the quorum costs the client, spawned servers excluded (the \
slowed scenario's proxy runs inside redlock and is included).
Field names are stable within a schema number; new fields may be added.

--plot FILE.svg writes the full-cycle latency distribution (CDF, log scale) \
of single vs quorum for each workload, and of the healthy quorum against \
the slowed and paused ones, readable without the table.";

pub(super) const INSPECT_LONG_ABOUT: &str = "\
Ask every master about one resource and print a table: its state there \
(free, held, a key of the wrong type, unreachable and why), the holder's \
token (its first 8 characters), who holds it (host, pid, since when, label: \
recorded by every redlock client unless turned off), the time to live left \
and the resource's fence counter. Then whether one token holds a quorum.

Read-only: it never takes, extends or changes a lock. When fewer than a \
quorum of masters answer, each is asked on its own, so the ones that do \
answer are still shown. Exits 0 when a quorum of masters answered, 69 \
otherwise (after printing what it saw).

--json prints one JSON document on stdout instead (schema 1; fields are \
plain values, null when they do not apply):
  { \"schema\": 1, \"resource\", \"key\", \"quorum\" (votes needed),
    \"reachable\", \"holders\" (masters holding the most common token),
    \"holder_token_prefix\", \"holder_host\", \"holder_pid\",
    \"holder_since_unix_ms\", \"holder_label\", \"ttl_ms\",
    \"held_by_quorum\", \"fence\" (highest on any master, 0: never fenced),
    \"masters\": [ { \"address\", \"state\" (free|held|wrong_type|unreachable),
                   \"reachable\", \"held\", \"token_prefix\", \"holder_host\",
                   \"holder_pid\", \"holder_since_unix_ms\", \"holder_label\",
                   \"ttl_ms\", \"no_expiry\", \"wrong_type\", \"fence\",
                   \"error\" } ] }";

pub(super) const UNLOCK_LONG_ABOUT: &str = "\
Release a lock from outside the process that holds it, on every master.

--token TOKEN releases the keys that hold that token, and nothing else: the \
holder's own compare-and-delete, for a job that handed its token on \
(REDLOCK_TOKEN) or an operator who has it from the holder. A wrong or stale \
token removes nothing. Pass the whole value, quoted (it contains spaces), or \
its first 32 hex digits; `--token -` reads it from stdin, so it never shows \
in `ps`.

--force deletes the lock key whoever holds it, after printing who held it \
(host, pid, label, since when, time left). It is the last resort for a lock \
whose holder is gone and whose TTL is too long to wait for. DANGER: if the \
holder still runs, it keeps trusting its lock until its validity ends (or \
until its next extension fails), while the next contender takes the resource \
at once: for that while, two holders. exec notices at its next extension and \
stops CMD (exit 76); a paused holder notices nothing. Make sure the holder is \
dead first, or use --token. Keys of another type where the lock key should be \
are deleted too. Fence counters are kept.

Exits 0 when a quorum of masters confirmed (with --token: the keys are gone, \
or no master holds that token and the resource is free), 75 when the token \
holds nothing while another owner holds the resource (it says who), 69 when \
fewer than a quorum confirmed or could be reached (the keys left there \
expire with their TTL), 64 for a malformed token.";

pub(super) const UNLOCK_EXAMPLES: &str = "\
Examples:
  # a job hands its lock to a later step, which releases it:
  redlock exec -r deploy --ttl 1m -- sh -c 'echo \"$REDLOCK_TOKEN\" > /run/deploy.token; ./deploy.sh'
  redlock unlock -r deploy --token - < /run/deploy.token

  # the holder's host died with a long TTL: check who holds it, then force it
  redlock inspect -r nightly-report
  redlock unlock -r nightly-report --force";
