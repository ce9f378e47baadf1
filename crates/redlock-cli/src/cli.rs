//! The command line: clap derive types, value parsers that turn text into
//! checked values at the boundary, and clap errors folded into one line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use redlock_core::{ConfigError, Settings};

use crate::output::{Failure, EXIT_STATUS_TABLE, EX_LOCK_LOST, EX_TEMPFAIL};

mod help;
mod parse;

use help::{
    ABOUT, BENCH_LONG_ABOUT, EXAMPLES, EXEC_EXAMPLES, EXEC_LONG_ABOUT, INSPECT_LONG_ABOUT,
    LONG_ABOUT, UNLOCK_EXAMPLES, UNLOCK_LONG_ABOUT,
};
use parse::{
    parse_duration, parse_label, parse_positive_duration, parse_prefix, parse_resource,
    parse_spawn, parse_ttl, parse_wait,
};

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
    pub(crate) tls_ca: Option<PathBuf>,

    /// Wake a waiting command as soon as another process releases the
    /// lock, instead of sleeping out its retry delay.
    ///
    /// Releases then announce themselves (a PUBLISH on the lock key's
    /// channel), and a command that waits (--wait) subscribes after its
    /// first refusal, over one extra connection per master. Use it on
    /// every host that takes the same locks: a waiter hears only the
    /// releases of processes that announce them. Pays when holders keep
    /// the lock a while (cron jobs); see docs/benchmarks.md.
    #[arg(long, global = true)]
    pub(crate) wake_on_release: bool,

    /// Which Redis client reaches the masters.
    ///
    /// Both send the same commands under the same safety rules and
    /// support every option. redis-rs batches the commands of concurrent
    /// locks into fewer writes. See docs/benchmarks.md.
    #[arg(
        long,
        global = true,
        env = "REDLOCK_CLIENT",
        value_enum,
        default_value_t = ClientArg::RedisRs
    )]
    pub(crate) client: ClientArg,
}

/// `--client`: the Redis client of the lock managers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ClientArg {
    /// fred.
    Fred,
    /// redis-rs (the default).
    #[value(name = "redis-rs")]
    RedisRs,
}

impl From<ClientArg> for redlock_tokio::Client {
    fn from(client: ClientArg) -> Self {
        match client {
            ClientArg::Fred => Self::Fred,
            ClientArg::RedisRs => Self::RedisRs,
        }
    }
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

    /// The tokio runtime the client runs on: multi (one worker per CPU,
    /// tokio's default) or current (every task on one thread). On few cores
    /// it can decide much of what the quorum costs over a single master: on
    /// 2 vCPUs, 5 spawned masters, the sequential p50 cycle of the quorum was
    /// 0.79-1.09x a single master's on multi in three runs of four (4.4x in
    /// the fourth), 0.89-0.98x on current.
    #[arg(long, value_enum, default_value_t = RuntimeArg::Multi)]
    pub(crate) runtime: RuntimeArg,
}

/// `bench --runtime`: the tokio runtime the benchmark's client runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RuntimeArg {
    /// tokio's multi-thread runtime, one worker per CPU (the default).
    Multi,
    /// Every task on one thread.
    Current,
}

impl RuntimeArg {
    /// Its name on the command line (and in `--json`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Multi => "multi",
            Self::Current => "current",
        }
    }
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
        assert_eq!(parse_duration("365d"), Ok(parse::MAX_DURATION));
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
