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
//! 3. the same burst without the lock: it oversells.
//!
//! Burst rows are printed in the order things happened (the time each
//! server finished the purchase), so the stock column reads top to bottom.
//!
//! ```sh
//! cargo run --release -p redlock-tokio --example two_web_servers -- \
//!     --masters redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
//! ```
//!
//! `--no-lock` runs only the burst without the lock. Exit status: non-zero
//! if, with the lock, the final stock is not exactly `initial - sold` or
//! went negative (the demo's self-check). Overselling without the lock is
//! what that part shows, not a failure.

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
use fred::prelude::{Builder, Client, ClientLike, Config, Expiration, KeysInterface};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use redlock_tokio::{
    AcquireError, CancellationToken, LockManager, LockOptions, RetryPolicy, WithLockError,
};
use serde::{Deserialize, Serialize};

/// Key of the stock counter (data, not a lock key).
const STOCK_KEY: &str = "demo:stock";
/// The locked resource (key `redlock:demo:stock` on every master).
const RESOURCE: &str = "demo:stock";
/// How long the winner of the opening scene holds the lock: long enough
/// that the other server's attempt surely meets it.
const SCENE_HOLD: Duration = Duration::from_millis(300);

/// Request headers the load balancer passes through to the servers.
const H_LOCK: &str = "x-demo-lock";
const H_WORK_MS: &str = "x-demo-work-ms";
const H_LOCK_WAIT_MS: &str = "x-demo-lock-wait-ms";

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
    let mut backends = Vec::new();
    let mut addrs = Vec::new();
    for name in ["A", "B"] {
        // Each server connects on its own, as a separate process would.
        let locks = if args.no_lock {
            None
        } else {
            Some(
                LockManager::builder(args.masters.clone())
                    .ttl(Duration::from_secs(2))
                    .map_core(|b| b.danger_disable_restart_guard(args.danger_fresh_masters))
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
        };
        let app = Router::new()
            .route("/buy", post(buy))
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
        admin,
    };

    let mut ok = true;
    if !args.no_lock {
        ok &= scene(&shop, &args).await?;
        println!();
        ok &= burst(&shop, &args, true).await?;
        println!();
    }
    ok &= burst(&shop, &args, false).await?;

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
    admin: Client,
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

async fn connect_data(url: &str) -> Result<Client, Error> {
    let client = Builder::from_config(Config::from_url(url)?).build()?;
    client.init().await?;
    Ok(client)
}

/// A URL without its password, for printing.
fn redact(url: &str) -> String {
    redlock_tokio::redlock_core::redact_url(url)
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
    let locks = match (&b.locks, use_lock) {
        (Some(locks), true) => locks,
        _ => {
            return Json(
                sell(&b, work, None)
                    .await
                    .unwrap_or_else(|e| purchase(Outcome::Error, Some(e.to_string()))),
            )
        }
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
    let mut req =
        hyper::Request::post(format!("http://{lb}/buy")).header("x-request-id", id.to_string());
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
