//! Two web servers behind a load balancer, selling from one stock counter
//! kept in Redis, with and without the lock.
//!
//! Everything runs in this process, over real HTTP on loopback:
//!
//! ```text
//!   purchases ──► load balancer (round robin) ──► server A ─┐
//!                                            └──► server B ─┤
//!        stock counter `demo:stock` in Redis ◄──────────────┘
//!        lock "demo:stock" on the Redlock masters
//! ```
//!
//! Each server has its own lock manager and its own Redis connections, as
//! two processes would. A purchase takes the lock (waiting a little, then
//! giving up: "refused"), reads the stock, works for a few milliseconds
//! (which makes the race real), writes `stock - 1` if there was any, and
//! releases. The run shows, in order:
//!
//! 1. the picture the project started from: two requests arrive at once,
//!    one per server; one server gets the lock, the other is refused and
//!    says by whom, as far as the lock can tell (another owner, on how many
//!    masters);
//! 2. a burst of purchases through the load balancer with the lock: the
//!    stock is exact;
//! 3. the same burst without the lock: it oversells;
//! 4. what the lock alone cannot prevent: server A takes the lock, reads
//!    the stock, and stalls past its TTL (a simulated stop-the-world GC
//!    pause, which stops its lock watchdog too); server B takes the lock
//!    and sells; A wakes and writes with its stale lock. Without fencing
//!    the counter accepts A's write: an oversell, and B's sale is lost;
//! 5. the same with fencing: each lock carries a fence greater than every
//!    earlier holder's, the counter is a Lua compare-and-set on the fence
//!    (the script of `docs/safety.md`), and it refuses A.
//!
//! Rows are printed in the order things happened (the time each server
//! finished the purchase, or took each step), so the stock column reads
//! top to bottom.
//!
//! ```sh
//! cargo run --release -p redlock-tokio --example two_web_servers -- \
//!     --masters redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
//! ```
//!
//! `--no-lock` runs only the burst without the lock. Exit status: non-zero
//! if, with the lock, the final stock is not exactly `initial - sold` or
//! went negative, or if, with fencing, the stale write was not refused (the
//! demo's self-checks). Overselling without the lock, and with a stale lock
//! without fencing, is what those parts show, not a failure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use fred::prelude::{Builder, Client, ClientLike, Config, Expiration, KeysInterface, LuaInterface};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use redlock_tokio::{
    AcquireError, CancellationToken, ExtendPolicy, LockManager, LockOptions, RetryPolicy,
    WithLockError,
};
use serde::{Deserialize, Serialize};

/// Key of the stock counter (data, not a lock key).
const STOCK_KEY: &str = "demo:stock";
/// The locked resource (key `redlock:demo:stock` on every master).
const RESOURCE: &str = "demo:stock";
/// How long the winner of the opening scene holds the lock: long enough
/// that the other server's attempt surely meets it.
const SCENE_HOLD: Duration = Duration::from_millis(300);

/// The stale-lock scenes' stock counter: a hash with the stock (`value`)
/// and the highest fence a write carried (`fence`).
const SCENE_STOCK_KEY: &str = "demo:scene-stock";
/// The lock of the stale-lock scenes.
const SCENE_RESOURCE: &str = "demo:scene-stock";
/// TTL of the stalling server's lock: short, so the demo stays quick.
const STALE_TTL: Duration = Duration::from_millis(500);
/// How long the other server waits for the lock in those scenes.
const SCENE_LOCK_WAIT: Duration = Duration::from_secs(5);

/// The counter's compare-and-set on the fence, exactly as `docs/safety.md`
/// gives it: a write with a fence lower than one already seen is refused.
const FENCED_WRITE: &str = r"
local seen = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) < seen then
  return 0  -- a newer holder already wrote: refuse the stale one
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2])
return 1
";
/// The same counter written without a fence: it accepts anything.
const PLAIN_WRITE: &str = "redis.call('HSET', KEYS[1], 'value', ARGV[1]) return 1";
/// Reads the counter: `{value, fence}`.
const READ_COUNTER: &str = "return {redis.call('HGET', KEYS[1], 'value') or '0', \
                            redis.call('HGET', KEYS[1], 'fence') or '0'}";
/// Resets the counter to `ARGV[1]`, fence 0.
const RESET_COUNTER: &str = "redis.call('DEL', KEYS[1]) \
                             redis.call('HSET', KEYS[1], 'value', ARGV[1], 'fence', '0') \
                             redis.call('EXPIRE', KEYS[1], 3600) return 1";

/// Request headers the load balancer passes through to the servers.
const H_LOCK: &str = "x-demo-lock";
const H_WORK_MS: &str = "x-demo-work-ms";
const H_LOCK_WAIT_MS: &str = "x-demo-lock-wait-ms";
/// Stale-lock scenes: `on` to stall after the lock check; `on` to fence.
const H_STALL: &str = "x-demo-stall";
const H_FENCE: &str = "x-demo-fence";

/// When the process started: every server stamps its events against it,
/// so rows from both servers sort into the order things happened.
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_us() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[derive(Parser, Debug)]
#[command(
    about = "Two web servers behind a round-robin load balancer sell from one Redis stock counter, with and without Redlock"
)]
struct Args {
    /// Redlock master URLs, comma-separated.
    #[arg(long, env = "REDLOCK_MASTERS", value_delimiter = ',', required = true)]
    masters: Vec<String>,
    /// Where the stock counter lives (default: the first master).
    #[arg(long)]
    data_url: Option<String>,
    /// Only the burst without the lock, to show the race.
    #[arg(long)]
    no_lock: bool,
    /// Concurrent purchase requests in each burst.
    #[arg(long, default_value_t = 40)]
    requests: usize,
    /// Initial stock of each burst.
    #[arg(long, default_value_t = 10)]
    stock: i64,
    /// Simulated work between reading and writing the stock, in ms.
    #[arg(long, default_value_t = 5)]
    work_ms: u64,
    /// How long a purchase waits for the lock before it is refused, in ms.
    #[arg(long, default_value_t = 250)]
    lock_wait_ms: u64,
    /// The masters were started empty for this demo alone: do not hold
    /// them back for a TTL after their start (the restart guard). Never
    /// use it with masters other clients lock on.
    #[arg(long)]
    danger_fresh_masters: bool,
}

/// What a server answers for one purchase.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Purchase {
    server: String,
    outcome: Outcome,
    /// Stock read and written (when sold), for the log.
    before: Option<i64>,
    after: Option<i64>,
    /// Time spent waiting for the lock, in ms.
    lock_wait_ms: u64,
    /// When the server was done with it (µs since the process started).
    done_at_us: u64,
    detail: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Outcome {
    Sold,
    SoldOut,
    RefusedByLock,
    LockLost,
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Sold => "sold",
            Self::SoldOut => "sold-out",
            Self::RefusedByLock => "refused-by-lock",
            Self::LockLost => "lock-lost",
            Self::Error => "error",
        }
    }
}

/// One web server instance: its name, its lock manager, its Redis client.
#[derive(Clone)]
struct Backend {
    name: &'static str,
    locks: Option<LockManager>,
    data: Client,
    work: Duration,
    lock_wait: Duration,
    stall: Arc<Stall>,
}

/// The simulated pause of the stale-lock scenes: the stalling server says
/// when it froze, and stays frozen until the demo has let the other server
/// sell. A fixed sleep would do the same on an idle machine; the gate makes
/// the order certain on a busy one (CI).
#[derive(Default)]
struct Stall {
    reached: tokio::sync::Notify,
    resume: tokio::sync::Notify,
}

/// One step of a server in the stale-lock scenes.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Step {
    at_us: u64,
    server: String,
    text: String,
}

/// What a server answers in the stale-lock scenes.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct StaleSale {
    server: String,
    /// The fence of its lock, when fenced.
    fence: Option<u64>,
    /// Whether the counter accepted its write.
    sold: bool,
    /// Whether the counter refused it (a higher fence was seen).
    refused: bool,
    steps: Vec<Step>,
    error: Option<String>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    EPOCH.get_or_init(Instant::now);
    let args = Args::parse();
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// Runs the demo; `Ok(false)` when a self-check fails.
async fn run(args: Args) -> Result<bool, Error> {
    let data_url = args
        .data_url
        .clone()
        .or_else(|| args.masters.first().cloned())
        .ok_or("no master given")?;
    let admin = connect_data(&data_url).await?;

    let stop = CancellationToken::new();
    let stall = Arc::new(Stall::default());
    let mut backends = Vec::new();
    let mut addrs = Vec::new();
    for name in ["A", "B"] {
        // Each server connects on its own, as a separate process would.
        let locks = if args.no_lock {
            None
        } else {
            Some(
                LockManager::builder(args.masters.clone())
                    .settings(|s| {
                        s.ttl(Duration::from_secs(2))
                            .danger_disable_restart_guard(args.danger_fresh_masters)
                    })
                    .connect()
                    .await?,
            )
        };
        let backend = Backend {
            name,
            locks,
            data: connect_data(&data_url).await?,
            work: Duration::from_millis(args.work_ms),
            lock_wait: Duration::from_millis(args.lock_wait_ms),
            stall: Arc::clone(&stall),
        };
        let app = Router::new()
            .route("/buy", post(buy))
            .route("/stale-sale", post(stale_sale))
            .with_state(backend.clone());
        addrs.push(serve(app, stop.clone()).await?);
        backends.push(backend);
    }
    let lb = LoadBalancer {
        backends: addrs.clone(),
        next: Arc::new(AtomicUsize::new(0)),
        client: http_client(),
    };
    let lb_addr = serve(Router::new().fallback(proxy).with_state(lb), stop.clone()).await?;
    let client: HttpClient<HttpConnector, Empty<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    let shop = Shop {
        client,
        lb: lb_addr,
        servers: addrs.clone(),
        admin,
        stall,
    };

    let mut ok = true;
    if !args.no_lock {
        ok &= scene(&shop, &args).await?;
        println!();
        ok &= burst(&shop, &args, true).await?;
        println!();
    }
    ok &= burst(&shop, &args, false).await?;
    if !args.no_lock {
        println!();
        ok &= stale_scene(&shop, false).await?;
        println!();
        ok &= stale_scene(&shop, true).await?;
    }

    println!();
    println!(
        "(masters: {}; stock counter {STOCK_KEY} on {}; server A on http://{}, server B on http://{}, load balancer on http://{lb_addr})",
        args.masters.iter().map(|m| redact(m)).collect::<Vec<_>>().join(", "),
        redact(&data_url),
        addrs[0],
        addrs[1]
    );

    // Give everything back: every lock released, every background task done.
    for b in &backends {
        if let Some(locks) = &b.locks {
            let r = locks.shutdown(Duration::from_secs(2)).await;
            if !r.is_clean() {
                println!("server {} shutdown: {r}", b.name);
            }
        }
    }
    stop.cancel();
    Ok(ok)
}

/// What the client side of the demo needs: an HTTP client, the load
/// balancer's address, and a Redis connection to set and read the stock.
struct Shop {
    client: HttpClient<HttpConnector, Empty<Bytes>>,
    lb: SocketAddr,
    /// Server A's and server B's own addresses, for the scenes that send a
    /// request to a chosen server.
    servers: Vec<SocketAddr>,
    admin: Client,
    stall: Arc<Stall>,
}

impl Shop {
    async fn reset_stock(&self, stock: i64) -> Result<(), Error> {
        self.admin
            .set::<(), _, _>(STOCK_KEY, stock, Some(Expiration::EX(3600)), None, false)
            .await?;
        Ok(())
    }

    async fn stock(&self) -> Result<i64, Error> {
        Ok(self
            .admin
            .get::<Option<i64>, _>(STOCK_KEY)
            .await?
            .ok_or("stock key vanished")?)
    }

    async fn reset_counter(&self, stock: i64) -> Result<(), Error> {
        self.admin
            .eval::<i64, _, _, _>(RESET_COUNTER, SCENE_STOCK_KEY, stock)
            .await?;
        Ok(())
    }
}

/// The stale-lock scenes' counter: `(stock, highest fence written)`.
async fn read_counter(data: &Client) -> Result<(i64, u64), Error> {
    let (value, fence): (String, String) = data
        .eval(READ_COUNTER, SCENE_STOCK_KEY, Vec::<String>::new())
        .await?;
    Ok((value.parse()?, fence.parse()?))
}

/// The opening scene: two purchases at the same moment, one per server
/// (the load balancer alternates), each trying the lock once. Returns
/// whether the stock is exact afterwards.
async fn scene(shop: &Shop, args: &Args) -> Result<bool, Error> {
    shop.reset_stock(args.stock).await?;
    println!("== Two servers, one lock ==");
    println!("Two purchase requests arrive at the same moment; the load balancer sends one to each server.");
    println!(
        "Each server tries the lock once and, if it gets it, sells and holds it for {} ms:",
        SCENE_HOLD.as_millis()
    );
    let headers = [
        (H_WORK_MS, SCENE_HOLD.as_millis().to_string()),
        (H_LOCK_WAIT_MS, "0".to_owned()),
    ];
    let (first, second) = tokio::join!(
        purchase(&shop.client, shop.lb, 0, &headers),
        purchase(&shop.client, shop.lb, 1, &headers)
    );
    let mut replies: Vec<Purchase> = vec![first?, second?];
    // The winner first, then whoever it kept out.
    replies.sort_by_key(|p| (p.outcome != Outcome::Sold, p.server.clone()));
    for p in &replies {
        let line = match p.outcome {
            Outcome::Sold => format!(
                "got the lock, sold one (stock {} -> {}), released it",
                p.before.unwrap_or_default(),
                p.after.unwrap_or_default()
            ),
            Outcome::RefusedByLock => format!(
                "refused at once: {}",
                p.detail.as_deref().unwrap_or("the lock is held")
            ),
            other => format!(
                "{}{}",
                other.label(),
                p.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        };
        println!("  server {}: {line}", p.server);
    }
    let sold = replies
        .iter()
        .filter(|p| p.outcome == Outcome::Sold)
        .count();
    let refused = replies
        .iter()
        .filter(|p| p.outcome == Outcome::RefusedByLock)
        .count();
    if sold == 1 && refused == 1 {
        println!("One lock, two servers: one sells, the other is told no instead of racing it.");
    } else {
        println!("(This time the two did not overlap: {sold} sold, {refused} refused.)");
    }
    let expected = args.stock - i64::try_from(sold)?;
    let stock = shop.stock().await?;
    if stock != expected {
        println!("SELF-CHECK FAILED: stock {stock}, expected {expected}");
        return Ok(false);
    }
    Ok(true)
}

/// A burst of `args.requests` purchases at once, with or without the lock.
/// Returns the self-check: exact stock with the lock (always `true`
/// without: overselling is the point).
async fn burst(shop: &Shop, args: &Args, locked: bool) -> Result<bool, Error> {
    let mode = if locked {
        "WITH the lock"
    } else {
        "WITHOUT the lock"
    };
    shop.reset_stock(args.stock).await?;
    println!(
        "== Burst {mode}: {} purchases at once through the load balancer, stock {} ==",
        args.requests, args.stock
    );
    let headers: Vec<(&str, String)> = if locked {
        Vec::new()
    } else {
        vec![(H_LOCK, "off".to_owned())]
    };
    let t0 = Instant::now();
    let start_us = now_us();
    let replies = futures::future::join_all((0..args.requests).map(|id| {
        let headers = &headers;
        async move { (id, purchase(&shop.client, shop.lb, id, headers).await) }
    }))
    .await;
    let elapsed = t0.elapsed();

    // In the order the servers finished them; failed requests last.
    let mut rows: Vec<(usize, &Result<Purchase, Error>)> =
        replies.iter().map(|(id, r)| (*id, r)).collect();
    rows.sort_by_key(|(id, r)| match r {
        Ok(p) => (0, p.done_at_us, *id),
        Err(_) => (1, 0, *id),
    });
    let mut sold = 0i64;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let mut per_server = std::collections::BTreeMap::<String, usize>::new();
    for (id, reply) in rows {
        match reply {
            Ok(p) => {
                *counts.entry(p.outcome.label()).or_default() += 1;
                *per_server.entry(p.server.clone()).or_default() += 1;
                if p.outcome == Outcome::Sold {
                    sold += 1;
                }
                let stock = match (p.before, p.after) {
                    (Some(b), Some(a)) => format!("stock {b} -> {a}"),
                    (Some(b), None) => format!("stock {b}"),
                    _ => String::new(),
                };
                let lock = if locked {
                    format!("lock wait {:>3} ms", p.lock_wait_ms)
                } else {
                    String::new()
                };
                let detail = p
                    .detail
                    .as_deref()
                    .map(|d| format!("  ({d})"))
                    .unwrap_or_default();
                let at_ms = p.done_at_us.saturating_sub(start_us) / 1000;
                let row = format!(
                    "  +{at_ms:>4} ms  req {id:>3}  server {}  {:<16} {stock:<15} {lock}{detail}",
                    p.server,
                    p.outcome.label()
                );
                println!("{}", row.trim_end());
            }
            Err(e) => {
                *counts.entry("http-error").or_default() += 1;
                println!("          req {id:>3}  -- http error: {e}");
            }
        }
    }
    let final_stock = shop.stock().await?;
    let report = |n: &str| counts.get(n).copied().unwrap_or(0);
    println!(
        "summary ({mode}): {} requests in {} ms",
        args.requests,
        elapsed.as_millis()
    );
    let servers: Vec<String> = per_server
        .iter()
        .map(|(s, n)| format!("server {s} answered {n}"))
        .collect();
    println!("  {}", servers.join(", "));
    println!(
        "  sold {sold}, sold-out {}, refused-by-lock {}, lock-lost {}, errors {}",
        report("sold-out"),
        report("refused-by-lock"),
        report("lock-lost"),
        report("error") + report("http-error")
    );
    let expected = args.stock - sold;
    println!(
        "  initial stock {}, final stock {final_stock}, initial - sold = {expected}",
        args.stock
    );
    let exact = final_stock == expected && final_stock >= 0 && sold <= args.stock;
    Ok(if !locked {
        if exact {
            println!("  no oversell this time: the race did not trigger (try more --requests or --work-ms)");
        } else {
            println!(
                "  OVERSOLD: {sold} units sold from a stock of {}; {} update(s) lost (the counter only went down by {})",
                args.stock,
                expected.abs_diff(final_stock),
                args.stock - final_stock
            );
        }
        true
    } else if exact {
        println!("  EXACT: every sale is in the counter, and the stock never went negative");
        true
    } else {
        println!("  SELF-CHECK FAILED: with the lock the final stock must be exactly {expected} and never negative");
        false
    })
}

/// Scenes 4 and 5: a stale lock, without and with fencing. Server A takes
/// the lock, reads the stock (1) and freezes; once its lock has expired,
/// server B takes it and sells; then A wakes and writes. Returns the
/// self-check: with fencing, A must be refused and the stock exact
/// (without fencing the oversell is the point, not a failure).
async fn stale_scene(shop: &Shop, fenced: bool) -> Result<bool, Error> {
    const STOCK: i64 = 1;
    shop.reset_counter(STOCK).await?;
    if fenced {
        println!("== The same WITH fencing: the counter refuses a write whose fence is lower than one it has seen ==");
        println!(
            "Each lock now carries a fence, greater than every earlier holder's; the stock counter {SCENE_STOCK_KEY}"
        );
        println!("is a Lua compare-and-set on it (the script in docs/safety.md). Same stock, same pause:");
    } else {
        println!("== A stale lock: server A pauses past its TTL (WITHOUT fencing) ==");
        println!(
            "Stock {STOCK}. Server A takes the lock (TTL {} ms), reads the stock and checks its lock is still valid;",
            STALE_TTL.as_millis()
        );
        println!(
            "then a stop-the-world pause (a long GC) freezes the whole process, its lock watchdog included, \
             until after server B is done."
        );
    }
    let fence_header = (H_FENCE, if fenced { "on" } else { "off" }.to_owned());
    let a_headers = [(H_STALL, "on".to_owned()), fence_header.clone()];
    let b_headers = [fence_header];
    let (a_addr, b_addr) = (shop.servers[0], shop.servers[1]);
    // A first; B once A is frozen (B then waits for A's lock to expire);
    // A resumes once B has answered.
    let a = post_json::<StaleSale>(&shop.client, a_addr, "/stale-sale", 0, &a_headers);
    let b = async {
        let frozen =
            tokio::time::timeout(Duration::from_secs(10), shop.stall.reached.notified()).await;
        let b = post_json::<StaleSale>(&shop.client, b_addr, "/stale-sale", 1, &b_headers).await;
        shop.stall.resume.notify_one();
        frozen.map_err(|_| "server A never reached its pause")?;
        b
    };
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (a?, b?);

    let mut steps: Vec<&Step> = a.steps.iter().chain(&b.steps).collect();
    steps.sort_by_key(|s| s.at_us);
    let t0 = steps.first().map_or(0, |s| s.at_us);
    for s in &steps {
        println!(
            "  +{:>4} ms  server {}  {}",
            s.at_us.saturating_sub(t0) / 1000,
            s.server,
            s.text
        );
    }
    for r in [&a, &b] {
        if let Some(e) = &r.error {
            println!("  server {}: error: {e}", r.server);
        }
    }
    let (stock, fence) = read_counter(&shop.admin).await?;
    let sold = i64::from(a.sold) + i64::from(b.sold);
    if !fenced {
        if a.sold && b.sold {
            println!(
                "result: {sold} sold from a stock of {STOCK}, final stock {stock}: OVERSOLD, and B's sale is lost"
            );
            println!(
                "  (A overwrote it with what it read before its pause). A's lock was valid when A checked it;"
            );
            println!("  only the counter itself could still have refused A's late write.");
        } else {
            println!(
                "(This time the scene did not play out: A sold: {}, B sold: {}.)",
                a.sold, b.sold
            );
        }
        return Ok(true);
    }
    let (fa, fb) = (a.fence.unwrap_or(0), b.fence.unwrap_or(0));
    let exact = b.sold
        && !a.sold
        && a.refused
        && fa < fb
        && fence == fb
        && stock == STOCK - sold
        && stock >= 0;
    if exact {
        println!(
            "result: {sold} sold from a stock of {STOCK}, final stock {stock}, counter at fence {fence}: EXACT"
        );
        println!("  (A's stale write, fence {fa}, was refused: B's, fence {fb}, came first).");
        Ok(true)
    } else {
        println!(
            "SELF-CHECK FAILED: with fencing, A (fence {fa}) must be refused after B (fence {fb}) sold: \
             A sold {}, refused {}; B sold {}; final stock {stock} (expected {}), counter fence {fence}",
            a.sold,
            a.refused,
            b.sold,
            STOCK - sold
        );
        Ok(false)
    }
}

/// The stale-lock scenes' handler: take the lock, read, check the lock,
/// (stall,) write. Steps are stamped as they happen.
async fn stale_sale(State(b): State<Backend>, headers: HeaderMap) -> Json<StaleSale> {
    let on = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()) == Some("on");
    let (stall, fenced) = (on(H_STALL), on(H_FENCE));
    let mut sale = StaleSale {
        server: b.name.to_owned(),
        ..StaleSale::default()
    };
    if let Err(e) = stale_steps(&b, stall, fenced, &mut sale).await {
        sale.error = Some(e.to_string());
        if stall {
            // Never leave the demo waiting for a pause that will not come.
            b.stall.reached.notify_one();
        }
    }
    Json(sale)
}

async fn stale_steps(
    b: &Backend,
    stall: bool,
    fenced: bool,
    sale: &mut StaleSale,
) -> Result<(), Error> {
    let step = |sale: &mut StaleSale, text: String| {
        sale.steps.push(Step {
            at_us: now_us(),
            server: b.name.to_owned(),
            text,
        });
    };
    let locks = b.locks.as_ref().ok_or("no lock manager")?;
    let mut opts = LockOptions::new()
        .retry(RetryPolicy::unbounded(
            Duration::from_millis(5),
            Duration::from_millis(40),
        ))
        .wait(Some(SCENE_LOCK_WAIT))
        .fenced(fenced);
    if stall {
        // A stop-the-world pause stops the watchdog with everything else:
        // this lock is simply not extended.
        opts = opts.ttl(STALE_TTL).extend(ExtendPolicy::disabled());
    }
    let guard = locks.acquire_with(SCENE_RESOURCE, &opts).await?;
    sale.fence = guard.fence().map(|f| f.get());
    let took = if stall {
        format!("(TTL {} ms, not extended)", STALE_TTL.as_millis())
    } else {
        "(the frozen server's lock has expired)".to_owned()
    };
    step(
        sale,
        match sale.fence {
            Some(f) => format!("got the lock with fence {f} {took}"),
            None => format!("got the lock {took}"),
        },
    );
    let (stock, _) = read_counter(&b.data).await?;
    // Check the lock right before the side effect, as one should. A pause
    // can still fall between this check and the write.
    if !guard.is_valid() {
        step(
            sale,
            format!("read stock {stock}, but its lock is no longer valid: gives up"),
        );
        return Ok(());
    }
    step(
        sale,
        format!("read stock {stock}; lock still valid, about to write"),
    );
    if stock <= 0 {
        step(sale, "sold out".to_owned());
        return Ok(());
    }
    if stall {
        step(
            sale,
            "FROZEN: a stop-the-world pause (simulated GC); nothing runs, the lock is not extended"
                .to_owned(),
        );
        let frozen_at = Instant::now();
        b.stall.reached.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(10), b.stall.resume.notified()).await;
        let expired = if guard.is_valid() {
            "its lock is still valid".to_owned()
        } else {
            "its lock expired during the pause, but nothing tells it so".to_owned()
        };
        step(
            sale,
            format!(
                "wakes up after {} ms; {expired}: it goes on with its write",
                frozen_at.elapsed().as_millis()
            ),
        );
    }
    let after = stock - 1;
    match sale.fence {
        Some(fence) => {
            let accepted: i64 = b
                .data
                .eval(
                    FENCED_WRITE,
                    SCENE_STOCK_KEY,
                    vec![fence.to_string(), after.to_string()],
                )
                .await?;
            sale.sold = accepted == 1;
            sale.refused = accepted == 0;
            let (_, seen) = read_counter(&b.data).await?;
            step(
                sale,
                if sale.sold {
                    format!("writes stock {stock} -> {after} with fence {fence}: ACCEPTED, sold")
                } else {
                    format!(
                        "writes stock {stock} -> {after} with fence {fence}: REFUSED (the counter has seen fence {seen})"
                    )
                },
            );
        }
        None => {
            b.data
                .eval::<i64, _, _, _>(PLAIN_WRITE, SCENE_STOCK_KEY, after)
                .await?;
            sale.sold = true;
            step(
                sale,
                format!("writes stock {stock} -> {after}: ACCEPTED, sold"),
            );
        }
    }
    // A's lock is long gone: the release finds nothing of its own.
    let _ = guard.release().await;
    step(sale, "released the lock".to_owned());
    Ok(())
}

async fn connect_data(url: &str) -> Result<Client, Error> {
    let client = Builder::from_config(Config::from_url(url)?).build()?;
    client.init().await?;
    Ok(client)
}

/// A URL without its password, for printing.
fn redact(url: &str) -> String {
    redlock_tokio::redact_url(url)
}

/// Serves `app` on a free loopback port until `stop` is cancelled.
async fn serve(app: Router, stop: CancellationToken) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            eprintln!("server on {addr}: {e}");
        }
    });
    Ok(addr)
}

/// A millisecond count from a request header, if present and valid.
fn header_ms(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let ms = headers.get(name)?.to_str().ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// Who kept us out, as far as the lock can tell: the votes say how many
/// masters another owner holds the key on, not who that owner is (its
/// token is never revealed).
fn refusal(e: &AcquireError) -> String {
    match e.votes() {
        Some(v) => format!(
            "the lock is held by another owner on {}/{} masters ({} needed)",
            v.held_elsewhere(),
            v.quorum().masters(),
            v.quorum().needed()
        ),
        None => e.to_string(),
    }
}

/// The purchase handler of a web server.
async fn buy(State(b): State<Backend>, headers: HeaderMap) -> Json<Purchase> {
    let start = Instant::now();
    let work = header_ms(&headers, H_WORK_MS).unwrap_or(b.work);
    let lock_wait = header_ms(&headers, H_LOCK_WAIT_MS).unwrap_or(b.lock_wait);
    let use_lock = headers.get(H_LOCK).and_then(|v| v.to_str().ok()) != Some("off");
    let purchase = |outcome, detail: Option<String>| Purchase {
        server: b.name.to_owned(),
        outcome,
        before: None,
        after: None,
        lock_wait_ms: 0,
        done_at_us: now_us(),
        detail,
    };
    let (Some(locks), true) = (&b.locks, use_lock) else {
        return Json(
            sell(&b, work, None)
                .await
                .unwrap_or_else(|e| purchase(Outcome::Error, Some(e.to_string()))),
        );
    };
    // Wait a little for a busy lock (jittered backoff, not a spin), then
    // give up: the client is told "refused" rather than kept waiting.
    let opts = if lock_wait.is_zero() {
        LockOptions::once()
    } else {
        LockOptions::new()
            .retry(RetryPolicy::unbounded(
                Duration::from_millis(5),
                Duration::from_millis(40),
            ))
            .wait(Some(lock_wait))
    };
    let result = locks
        .with_lock_opts(RESOURCE, &opts, |status| {
            let b = b.clone();
            let waited = start.elapsed();
            async move {
                let mut p = sell(&b, work, Some(&status)).await;
                if let Ok(p) = &mut p {
                    p.lock_wait_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
                }
                p
            }
        })
        .await;
    Json(match result {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => purchase(Outcome::Error, Some(e.to_string())),
        Err(WithLockError::Acquire(e)) if e.is_contended() => {
            let mut p = purchase(Outcome::RefusedByLock, Some(refusal(&e)));
            p.lock_wait_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            p
        }
        Err(WithLockError::Lost(reason)) => purchase(Outcome::LockLost, Some(reason.to_string())),
        Err(e) => purchase(Outcome::Error, Some(e.to_string())),
    })
}

/// Read, work, write: the critical section.
async fn sell(
    b: &Backend,
    work: Duration,
    lock: Option<&redlock_tokio::LockStatus>,
) -> Result<Purchase, Error> {
    let stock: i64 = b
        .data
        .get::<Option<i64>, _>(STOCK_KEY)
        .await?
        .ok_or("no stock key")?;
    tokio::time::sleep(work).await;
    let mut p = Purchase {
        server: b.name.to_owned(),
        outcome: Outcome::SoldOut,
        before: Some(stock),
        after: None,
        lock_wait_ms: 0,
        done_at_us: 0,
        detail: None,
    };
    if stock > 0 {
        // Check the lock right before the side effect.
        if let Some(status) = lock {
            if !status.is_valid() {
                p.outcome = Outcome::LockLost;
                p.done_at_us = now_us();
                return Ok(p);
            }
        }
        b.data
            .set::<(), _, _>(
                STOCK_KEY,
                stock - 1,
                Some(Expiration::EX(3600)),
                None,
                false,
            )
            .await?;
        p.outcome = Outcome::Sold;
        p.after = Some(stock - 1);
    }
    p.done_at_us = now_us();
    Ok(p)
}

/// A round-robin reverse proxy over the two servers.
#[derive(Clone)]
struct LoadBalancer {
    backends: Vec<SocketAddr>,
    next: Arc<AtomicUsize>,
    client: HttpClient<HttpConnector, Body>,
}

fn http_client() -> HttpClient<HttpConnector, Body> {
    HttpClient::builder(TokioExecutor::new()).build_http()
}

async fn proxy(State(lb): State<LoadBalancer>, mut req: Request) -> Response {
    let i = lb.next.fetch_add(1, Ordering::Relaxed) % lb.backends.len();
    let target = lb.backends[i];
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri: Uri = match format!("http://{target}{path}").parse() {
        Ok(uri) => uri,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    *req.uri_mut() = uri;
    match lb.client.request(req).await {
        Ok(resp) => {
            let mut resp = resp.map(Body::new);
            resp.headers_mut()
                .insert("x-backend", HeaderValue::from(i as u64));
            resp
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("backend {target}: {e}")).into_response(),
    }
}

/// One purchase through the load balancer, with extra request headers.
async fn purchase(
    client: &HttpClient<HttpConnector, Empty<Bytes>>,
    lb: SocketAddr,
    id: usize,
    headers: &[(&str, String)],
) -> Result<Purchase, Error> {
    post_json(client, lb, "/buy", id, headers).await
}

/// A POST to `addr` (the load balancer or one server), with extra request
/// headers; the JSON answer.
async fn post_json<T: serde::de::DeserializeOwned>(
    client: &HttpClient<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
    id: usize,
    headers: &[(&str, String)],
) -> Result<T, Error> {
    let mut req =
        hyper::Request::post(format!("http://{addr}{path}")).header("x-request-id", id.to_string());
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let resp = client.request(req.body(Empty::new())?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(serde_json::from_slice(&body)?)
}
