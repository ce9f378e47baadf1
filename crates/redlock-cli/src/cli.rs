//! The command line: clap derive types, value parsers that turn text into
//! checked values at the boundary, and clap errors folded into one line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use redlock_core::{ConfigError, KeyPrefix, Resource, Settings, Ttl, MAX_LABEL_LEN};

use crate::output::{Failure, EXIT_STATUS_TABLE, EX_LOCK_LOST, EX_TEMPFAIL};
use crate::spawn::MAX_SPAWN;

const ABOUT: &str = "A distributed lock over N independent Redis masters (Redlock): run a cron \
job on one host at a time, inspect or release a lock, and measure one Redis against a quorum.";

const LONG_ABOUT: &str = "\
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

const EXAMPLES: &str = "\
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

const EXEC_LONG_ABOUT: &str = "\
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

const EXEC_EXAMPLES: &str = "\
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

const BENCH_LONG_ABOUT: &str = "\
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
               delays every chunk by --slow-by each way
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

const INSPECT_LONG_ABOUT: &str = "\
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

const UNLOCK_LONG_ABOUT: &str = "\
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

const UNLOCK_EXAMPLES: &str = "\
Examples:
  # a job hands its lock to a later step, which releases it:
  redlock exec -r deploy --ttl 1m -- sh -c 'echo \"$REDLOCK_TOKEN\" > /run/deploy.token; ./deploy.sh'
  redlock unlock -r deploy --token - < /run/deploy.token

  # the holder's host died with a long TTL: check who holds it, then force it
  redlock inspect -r nightly-report
  redlock unlock -r nightly-report --force";

/// The `redlock` command line.
#[derive(Debug, Parser)]
#[command(
    name = "redlock",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXIT_STATUS_TABLE,
    after_long_help = format!("{EXAMPLES}\n\n{EXIT_STATUS_TABLE}"),
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

/// Options every subcommand accepts, before or after its name.
#[derive(Debug, Args)]
#[command(next_help_heading = "Master options (before or after the subcommand)")]
pub(crate) struct Global {
    /// Redis master URLs (the help text shows their syntax).
    #[arg(
        long,
        help = "Redis master URLs, comma-separated (redis://[user:password@]host:port[/db]). \
                Each must be an independent primary; a quorum is a majority of them",
        global = true,
        env = "REDLOCK_MASTERS",
        value_delimiter = ',',
        value_name = "URL[,URL...]",
        hide_env_values = true
    )]
    pub(crate) masters: Vec<String>,

    /// Start N throwaway redis-server processes on free loopback ports, use
    /// them as the masters, and stop them on exit. Overrides REDLOCK_MASTERS.
    #[arg(long, global = true, value_name = "N", value_parser = parse_spawn)]
    pub(crate) spawn: Option<usize>,

    /// Prefix of every lock key on the masters.
    #[arg(
        long,
        global = true,
        env = "REDLOCK_PREFIX",
        default_value = "redlock:",
        value_name = "PREFIX",
        hide_env_values = true,
        value_parser = parse_prefix
    )]
    pub(crate) prefix: String,

    /// Per-master timeout of each command; far below the TTL.
    #[arg(
        long,
        global = true,
        default_value = "50ms",
        value_name = "DURATION",
        value_parser = parse_positive_duration
    )]
    pub(crate) master_timeout: Duration,

    /// How long to wait for each master's first connection.
    #[arg(
        long,
        global = true,
        default_value = "2s",
        value_name = "DURATION",
        value_parser = parse_positive_duration
    )]
    pub(crate) connect_timeout: Duration,

    /// The deployment-wide maximum TTL and restart-guard window; every
    /// client of the same masters must use the same value.
    ///
    /// A longer --ttl is refused. A master that has been up for less than
    /// this grants no lock (the restart guard): it may have restarted empty
    /// and lost keys other holders count on, and the window must cover the
    /// longest TTL any client uses, which no client knows of the others.
    /// Raise it on every client together (REDLOCK_MAX_TTL), or keep TTLs
    /// short: exec extends its lock while CMD runs.
    #[arg(
        long,
        global = true,
        env = "REDLOCK_MAX_TTL",
        default_value = "60s",
        value_name = "DURATION",
        value_parser = parse_ttl
    )]
    pub(crate) max_ttl: Duration,

    /// Let masters that started less than --max-ttl ago grant locks at once.
    ///
    /// By default a master whose uptime is below --max-ttl grants nothing
    /// until it has been up that long (the restart guard): a master that
    /// restarted empty may have forgotten locks others still hold. Only for
    /// masters that persist every write (appendfsync always) or were just
    /// created empty for you alone. --spawn implies it.
    #[arg(long, global = true)]
    pub(crate) danger_disable_restart_guard: bool,

    /// PEM file of the CA(s) that sign the masters' TLS certificates, for
    /// rediss:// URLs. Without it, the system's roots are trusted. A
    /// failed TLS handshake is an error, never a plaintext retry.
    #[arg(long, global = true, env = "REDLOCK_TLS_CA", value_name = "FILE")]
    pub(crate) tls_ca: Option<std::path::PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Run CMD while holding the lock: a distributed flock(1) for cron and scripts.
    #[command(long_about = EXEC_LONG_ABOUT, after_help = EXEC_EXAMPLES,
              after_long_help = format!("{EXEC_EXAMPLES}\n\n{EXIT_STATUS_TABLE}"))]
    Exec(ExecArgs),
    /// Benchmark a single master against the quorum of all masters.
    #[command(long_about = BENCH_LONG_ABOUT)]
    Bench(BenchArgs),
    /// Show who holds a resource, master by master.
    #[command(long_about = INSPECT_LONG_ABOUT)]
    Inspect(InspectArgs),
    /// Release a lock from outside its holder: by its token, or by force.
    #[command(long_about = UNLOCK_LONG_ABOUT, after_help = UNLOCK_EXAMPLES)]
    Unlock(UnlockArgs),
}

/// `redlock exec`.
#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Name of the lock (the key is PREFIX+NAME).
    #[arg(long, short = 'r', value_name = "NAME", value_parser = parse_resource)]
    pub(crate) resource: String,

    /// Lease of each acquire and extension (e.g. 30s, 1m), at most --max-ttl
    /// (default 60s). CMD may run longer: the lock is extended while it runs.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub(crate) ttl: Duration,

    /// Retry until this deadline instead of giving up after one attempt;
    /// `forever` retries without limit.
    #[arg(long, value_name = "DURATION|forever", value_parser = parse_wait)]
    pub(crate) wait: Option<Wait>,

    /// After losing the lock, how long CMD has between SIGTERM and SIGKILL.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub(crate) kill_after: Duration,

    /// Acquire with a fencing token and give CMD REDLOCK_FENCE: a number
    /// greater than every earlier fenced holder's of this resource. Pass it
    /// with every write; the resource refuses lower ones (docs/safety.md).
    /// Costs one more round trip to a quorum per acquire.
    #[arg(long)]
    pub(crate) fence: bool,

    /// A label recorded with the lock, beside this host and redlock's pid
    /// (e.g. the job's name): `inspect` shows it, and so does a refused exec.
    #[arg(long, value_name = "TEXT", value_parser = parse_label)]
    pub(crate) label: Option<String>,

    /// Exit status when another owner holds the lock, like flock's -E: 0
    /// makes a busy lock a quiet success for cron (with -q). Masters
    /// failing or unreachable keep their own statuses (75, 69).
    #[arg(long, value_name = "N", default_value_t = EX_TEMPFAIL,
          value_parser = clap::value_parser!(u8))]
    pub(crate) conflict_exit_code: u8,

    /// Exit status when the lock is lost: 1 to 255, since a lost lock is
    /// never a success.
    #[arg(long, value_name = "N", default_value_t = EX_LOCK_LOST,
          value_parser = clap::value_parser!(u8).range(1..=255))]
    pub(crate) lost_exit_code: u8,

    /// Report acquisition, extensions and release on stderr.
    #[arg(long, short = 'v', conflicts_with = "quiet")]
    pub(crate) verbose: bool,

    /// Say nothing when another owner holds the lock (still exit 75, or
    /// --conflict-exit-code): for cron, which mails any output. Failing
    /// masters are still reported.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,

    /// Run this string with `sh -c` instead of a CMD (like flock -c).
    #[arg(long = "command", short = 'c', value_name = "STRING",
          value_parser = clap::value_parser!(OsString))]
    pub(crate) shell_command: Option<OsString>,

    /// The command to run, and its arguments: after `--`, or from the first
    /// word that does not start with `-` (every word after it is CMD's).
    // No `allow_hyphen_values`: with it, a mistyped option (`--wiat 5s`)
    // became CMD, ran after the lock was taken, and failed with 127. Now
    // an unknown option before CMD is a usage error; `--` still passes
    // anything, dashes included.
    #[arg(
        required_unless_present = "shell_command",
        conflicts_with = "shell_command",
        trailing_var_arg = true,
        value_name = "CMD",
        value_parser = clap::value_parser!(OsString)
    )]
    pub(crate) command: Vec<OsString>,
}

/// `--wait`: a deadline, or none at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Retry until this long after the first attempt.
    For(Duration),
    /// Retry until acquired (or a signal).
    Forever,
}

impl ExecArgs {
    /// The program and its arguments: CMD, or `sh -c STRING`.
    pub(crate) fn argv(&self) -> Vec<OsString> {
        match &self.shell_command {
            Some(script) => vec!["sh".into(), "-c".into(), script.clone()],
            None => self.command.clone(),
        }
    }
}

/// `redlock bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Cycles per workload and configuration (acquisitions, for `contended`).
    #[arg(long, default_value_t = 2000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) iterations: u64,

    /// Tasks of the concurrent and contended workloads.
    #[arg(long, default_value_t = 8, value_name = "C",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) concurrency: u64,

    /// Tasks of the queued workload (the library's acquire, one resource).
    #[arg(long, default_value_t = 16, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) contenders: u64,

    /// Delay the proxy adds each way in front of the slowed master (0 shows
    /// the proxy's own cost).
    #[arg(long, default_value = "20ms", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) slow_by: Duration,

    /// Skip the fault scenarios (slowed and paused master).
    #[arg(long)]
    pub(crate) no_faults: bool,

    /// TTL of every benchmark lock.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_ttl)]
    pub(crate) ttl: Duration,

    /// Unmeasured cycles per configuration before measuring.
    #[arg(long, default_value_t = 100, value_name = "N",
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub(crate) warmup: u64,

    /// Print one JSON document (schema in `redlock bench --help`) instead of the table.
    #[arg(long)]
    pub(crate) json: bool,

    /// Also write an SVG chart of the latency distributions to FILE.svg.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
}

/// `redlock inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Name of the lock (the key is PREFIX+NAME).
    #[arg(long, short = 'r', value_name = "NAME", value_parser = parse_resource)]
    pub(crate) resource: String,

    /// Print one JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `redlock unlock`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("how").required(true).args(["token", "force"]))]
pub(crate) struct UnlockArgs {
    /// Name of the lock (the key is PREFIX+NAME).
    #[arg(long, short = 'r', value_name = "NAME", value_parser = parse_resource)]
    pub(crate) resource: String,

    /// Release only the keys holding this token: the value REDLOCK_TOKEN
    /// holds, quoted as one argument (or its first 32 hex digits), or `-`
    /// to read it from stdin and keep it out of `ps`.
    // Parsed by `unlock` rather than by clap: clap repeats a value it
    // refuses, and this one may be a secret.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) token: Option<String>,

    /// Delete the lock whoever holds it, after printing who did. DANGER: a
    /// holder that still runs keeps trusting its lock until its validity
    /// ends, while the next contender takes the resource at once.
    #[arg(long)]
    pub(crate) force: bool,

    /// Print only errors: not who held a forced lock, not the confirmation.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
}

/// Where the masters come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MasterSource {
    /// URLs from `--masters` or `REDLOCK_MASTERS`.
    Urls(Vec<String>),
    /// `--spawn N`.
    Spawn(usize),
}

impl MasterSource {
    /// How many masters there will be.
    pub(crate) fn count(&self) -> usize {
        match self {
            Self::Urls(u) => u.len(),
            Self::Spawn(n) => *n,
        }
    }
}

/// The outcome of parsing the command line.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Run a subcommand.
    Run(Box<Cli>, MasterSource),
    /// Help or version was printed: exit with this status.
    Exit(u8),
}

/// Parses `args` (the first item is the program name).
///
/// # Errors
///
/// Any clap error except help and version, folded into one line with
/// status 64, and a missing or contradictory master list.
pub(crate) fn parse<I, T>(args: I) -> Result<Parsed, Failure>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::error::ErrorKind;
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // For the "see --help" hint: the first word naming a subcommand.
    let command = args
        .iter()
        .skip(1)
        .find_map(|a| {
            ["exec", "bench", "inspect", "unlock"]
                .into_iter()
                .find(|c| a.as_os_str() == *c)
        })
        .map_or_else(|| "redlock".to_owned(), |c| format!("redlock {c}"));
    let fold = |e: &clap::Error| fold_clap_error(e, &command);
    let matches = match Cli::command().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                return Ok(Parsed::Exit(0));
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                // Bare `redlock`: show the help, but it was not a success.
                let _ = e.print();
                return Ok(Parsed::Exit(crate::output::EX_USAGE));
            }
            _ => return Err(Failure::usage(fold(&e))),
        },
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Failure::usage(fold(&e)))?;
    let from_command_line = matches.value_source("masters") == Some(ValueSource::CommandLine);
    let source = match (cli.global.spawn, from_command_line) {
        (Some(_), true) => {
            return Err(Failure::usage(
                "--masters and --spawn cannot be used together: pick existing masters or throwaway ones",
            ))
        }
        // --spawn wins over REDLOCK_MASTERS from the environment: asking for
        // throwaway servers on the command line is the more specific wish.
        (Some(n), false) => MasterSource::Spawn(n),
        (None, _) => MasterSource::Urls(check_urls(&cli.global.masters)?),
    };
    Ok(Parsed::Run(Box::new(cli), source))
}

fn check_urls(urls: &[String]) -> Result<Vec<String>, Failure> {
    if urls.is_empty() {
        return Err(Failure::usage(
            "no masters: pass --masters URL[,URL...] (or set REDLOCK_MASTERS), or --spawn N to start N throwaway local redis-servers",
        ));
    }
    let mut seen: Vec<String> = Vec::with_capacity(urls.len());
    for u in urls {
        let u = u.trim();
        if u.is_empty() {
            return Err(Failure::usage(
                "--masters has an empty entry (two commas in a row, or a trailing comma?)",
            ));
        }
        // The core also compares resolved addresses and server run ids;
        // the same text twice is plainly a typo, so say so before
        // connecting anywhere.
        if seen.iter().any(|s| s == u) {
            return Err(Failure::usage(format_args!(
                "--masters lists the same master twice ({}): each must be an independent server, or it would vote twice",
                crate::output::short_input(&redlock_tokio::redact_url(u))
            )));
        }
        seen.push(u.to_owned());
    }
    Ok(seen)
}

impl Cli {
    /// Checks the lock settings for `masters` masters before anything is
    /// started or connected: a TTL the drift margin or the per-master
    /// timeout would eat is a usage error, found before `--spawn` starts
    /// servers for nothing; so is a `--plot` file that cannot be written.
    ///
    /// # Errors
    ///
    /// The settings error, status 64.
    pub(crate) fn check_settings(&self, masters: usize) -> Result<(), Failure> {
        let ttl = match &self.command {
            Cmd::Exec(a) => a.ttl,
            Cmd::Bench(a) => {
                if let Some(plot) = &a.plot {
                    crate::plot::check_writable(plot)?;
                }
                a.ttl
            }
            // No lock of their own: the TTL they connect with must fit
            // under --max-ttl and leave room for the per-master timeout.
            Cmd::Inspect(_) | Cmd::Unlock(_) => {
                return Settings::builder()
                    .ttl(self.global.plain_ttl())
                    .max_ttl(self.global.max_ttl)
                    .master_timeout(self.global.master_timeout)
                    .key_prefix(self.global.prefix.clone())
                    .build(masters)
                    .map(drop)
                    .map_err(|e| {
                        Failure::usage(format_args!(
                            "--max-ttl: {}",
                            crate::output::describe_config(&e)
                        ))
                    })
            }
        };
        let settings = |n: usize| {
            Settings::builder()
                .ttl(ttl)
                .max_ttl(self.global.max_ttl)
                .master_timeout(self.global.master_timeout)
                .key_prefix(self.global.prefix.clone())
                .build(n)
        };
        settings(masters).map_err(|e| match e {
            ConfigError::TtlAboveMax { ttl, max } => ttl_above_max(ttl, max),
            e => Failure::usage(format_args!(
                "--ttl: {}",
                crate::output::describe_config(&e)
            )),
        })?;
        Ok(())
    }
}

/// A `--ttl` above `--max-ttl`, in one line naming both options.
pub(crate) fn ttl_above_max(ttl: Duration, max: Duration) -> Failure {
    use crate::output::human_duration as h;
    Failure::usage(format_args!(
        "--ttl {} is above --max-ttl {}, the deployment-wide maximum TTL and restart-guard window: \
         use a shorter --ttl (exec extends the lock while CMD runs), or raise --max-ttl \
         (REDLOCK_MAX_TTL) on every client of these masters together",
        h(ttl),
        h(max)
    ))
}

impl Global {
    /// The TTL of a manager that takes no lock of its own (`inspect`,
    /// `unlock`): the settings need one, and it must fit under
    /// `--max-ttl`.
    pub(crate) fn plain_ttl(&self) -> Duration {
        self.max_ttl.min(Duration::from_secs(10))
    }
}

/// Folds a clap error report into one line: the error and its context,
/// without the usage block, plus where to find help for `command`.
pub(crate) fn fold_clap_error(e: &clap::Error, command: &str) -> String {
    // `Display` of the rendered report has no ANSI styling.
    let rendered = e.render().to_string();
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") {
            break;
        }
        if !line.is_empty() && !line.starts_with("For more information") {
            parts.push(line.strip_prefix("error: ").unwrap_or(line).to_owned());
        }
    }
    let mut message = parts.join(" ");
    if message.is_empty() {
        message = "invalid arguments".into();
    }
    // Clap repeats the offending word whole: a 100 KB resource name would
    // make a 100 KB "one line".
    use clap::error::{ContextKind, ContextValue};
    for kind in [ContextKind::InvalidValue, ContextKind::InvalidArg] {
        if let Some(ContextValue::String(v)) = e.get(kind) {
            let short = crate::output::short_input(v);
            if short.len() < v.len() {
                message = message.replace(v.as_str(), &short);
            }
        }
    }
    format!("{message} (see '{command} --help')")
}

/// The longest duration any option takes. Far beyond any sane TTL, wait or
/// timeout, and small enough that adding it to a clock reading can never
/// overflow (an `Instant` holds centuries), so nothing downstream has to
/// cope with values like `18446744073709551615s`.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}; expected a duration such as 500ms, 10s, 1m30s"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "too long: at most {}",
            crate::output::human_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    Ttl::try_from(d).map_err(|e| e.to_string())?;
    Ok(d)
}

fn parse_wait(s: &str) -> Result<Wait, String> {
    if s.trim().eq_ignore_ascii_case("forever") {
        return Ok(Wait::Forever);
    }
    parse_positive_duration(s).map(Wait::For)
}

fn parse_resource(s: &str) -> Result<String, String> {
    Resource::new(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

fn parse_label(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().any(char::is_control) {
        return Err("must be one line of text, without control characters".into());
    }
    if s.len() > MAX_LABEL_LEN {
        return Err(format!(
            "too long: {} bytes, at most {MAX_LABEL_LEN}",
            s.len()
        ));
    }
    Ok(s.to_owned())
}

fn parse_prefix(s: &str) -> Result<String, String> {
    KeyPrefix::new(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

fn parse_spawn(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of servers, 1 to {MAX_SPAWN}"))?;
    if !(1..=MAX_SPAWN).contains(&n) {
        return Err(format!("expected 1 to {MAX_SPAWN} servers"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Parsed, Failure> {
        parse(std::iter::once("redlock").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_the_command_after_dashes() {
        let Ok(Parsed::Run(cli, source)) = run(&[
            "--masters",
            "redis://a:1,redis://b:2",
            "exec",
            "--resource",
            "r",
            "--ttl",
            "5s",
            "--",
            "ls",
            "-l",
        ]) else {
            panic!("parse failed");
        };
        assert_eq!(source.count(), 2);
        let Cmd::Exec(a) = cli.command else {
            panic!("not exec");
        };
        assert_eq!(a.command, vec![OsString::from("ls"), OsString::from("-l")]);
        assert_eq!(a.ttl, Duration::from_secs(5));
    }

    #[test]
    fn unknown_options_before_cmd_are_usage_errors() {
        let exec = |tail: &[&str]| {
            let mut args = vec!["--masters", "redis://a:1", "exec", "-r", "r", "--ttl", "5s"];
            args.extend_from_slice(tail);
            run(&args)
        };
        match exec(&["--wiat", "5s", "--", "true"]) {
            Err(f) => {
                assert_eq!(f.status, crate::output::EX_USAGE);
                assert!(f.message.contains("--wiat"), "{}", f.message);
            }
            Ok(p) => panic!("parsed: {p:?}"),
        }
        for (tail, want) in [
            (&["--", "-x", "--wait"][..], &["-x", "--wait"][..]),
            (&["ls", "-l", "--wait", "1s"], &["ls", "-l", "--wait", "1s"]),
        ] {
            let Ok(Parsed::Run(cli, _)) = exec(tail) else {
                panic!("{tail:?} did not parse");
            };
            let Cmd::Exec(a) = cli.command else {
                panic!("not exec");
            };
            assert_eq!(
                a.command,
                want.iter().map(OsString::from).collect::<Vec<_>>()
            );
            assert_eq!(a.wait, None, "{tail:?}: CMD's --wait is not ours");
        }
    }

    #[test]
    fn globals_go_after_the_subcommand_too() {
        let Ok(Parsed::Run(_, source)) = run(&["bench", "--spawn", "5"]) else {
            panic!("parse failed");
        };
        assert_eq!(source, MasterSource::Spawn(5));
    }

    #[test]
    fn bad_input_is_one_usage_line() {
        for args in [
            &["exec", "--resource", "r", "--ttl", "banana", "--", "true"][..],
            &["exec", "--resource", "r", "--ttl", "0s", "--", "true"],
            &["exec", "--resource", "", "--ttl", "1s", "--", "true"],
            &["exec", "--ttl", "1s", "--", "true"],
            &["--spawn", "0", "inspect", "--resource", "r"],
            &[
                "--spawn",
                "2",
                "--masters",
                "redis://a:1",
                "inspect",
                "-r",
                "r",
            ],
            &["frobnicate"],
            &[
                "--masters",
                "redis://a:1,,redis://b:1",
                "inspect",
                "-r",
                "r",
            ],
            &["--masters", "redis://a:1,redis://a:1", "inspect", "-r", "r"],
        ] {
            match run(args) {
                Err(f) => {
                    assert_eq!(f.status, crate::output::EX_USAGE, "{args:?}");
                    assert!(!f.message.contains('\n'), "{args:?}: {}", f.message);
                    assert!(!f.message.contains("Usage"), "{args:?}: {}", f.message);
                }
                Ok(p) => panic!("{args:?} parsed: {p:?}"),
            }
        }
    }

    #[test]
    fn absurd_durations_are_refused_at_parse_time() {
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
        for huge in ["366d", "18446744073709551615s", "600years"] {
            let e = parse_duration(huge).expect_err(huge);
            assert!(e.contains("at most 365d"), "{huge}: {e}");
        }
        assert!(parse_ttl("400d").is_err());
    }

    #[test]
    fn a_huge_value_is_shortened_in_the_error() {
        let huge = "x".repeat(100 * 1024);
        match run(&["--masters", "redis://a:1", "inspect", "-r", &huge]) {
            Err(f) => {
                assert_eq!(f.status, crate::output::EX_USAGE);
                assert!(f.message.len() < 400, "{} bytes", f.message.len());
                assert!(f.message.contains("(102400 bytes)"), "{}", f.message);
                assert!(f.message.contains("--resource"), "{}", f.message);
            }
            Ok(p) => panic!("parsed: {p:?}"),
        }
    }

    #[test]
    fn duplicates_hide_passwords() {
        match run(&[
            "--masters",
            "redis://u:pw@a:1,redis://u:pw@a:1",
            "inspect",
            "-r",
            "r",
        ]) {
            Err(f) => {
                assert!(f.message.contains("redis://u:***@a:1"), "{}", f.message);
                assert!(!f.message.contains("pw"), "{}", f.message);
            }
            Ok(p) => panic!("parsed: {p:?}"),
        }
    }

    #[test]
    fn missing_masters_named() {
        match run(&["inspect", "--resource", "r"]) {
            Err(f) => assert!(f.message.contains("--spawn"), "{}", f.message),
            Ok(p) => panic!("parsed: {p:?}"),
        }
    }

    #[test]
    fn ttl_checked_against_drift_before_connecting() {
        let Ok(Parsed::Run(cli, source)) = run(&[
            "--spawn",
            "3",
            "exec",
            "--resource",
            "r",
            "--ttl",
            "2ms",
            "--",
            "true",
        ]) else {
            panic!("parse failed");
        };
        let f = cli.check_settings(source.count()).err();
        assert_eq!(f.map(|f| f.status), Some(crate::output::EX_USAGE));
    }
}
