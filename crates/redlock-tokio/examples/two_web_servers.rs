//! Two web servers behind a load balancer, selling from one stock counter
//! kept in Redis, with and without the lock.
//!
//! Everything runs in this process, over real HTTP on loopback:
//!
//! ```text
//!   burst of N purchases ──► load balancer (round robin) ──► server A ─┐
//!                                                        └──► server B ─┤
//!                  stock counter `demo:stock` in Redis ◄────────────────┘
//!                  lock "demo:stock" on the Redlock masters
//! ```
//!
//! Each server has its own lock manager and its own Redis connections, as
//! two processes would. A purchase takes the lock (waiting a little, then
//! giving up: "refused-by-lock"), reads the stock, works for a few
//! milliseconds (which makes the race real), writes `stock - 1` if there
//! was any, and releases. With `--no-lock` the same handler runs without
//! the lock, and the burst oversells.
//!
//! ```sh
//! cargo run --release -p redlock-tokio --example two_web_servers -- \
//!     --masters redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 [--no-lock]
//! ```
//!
//! Exit status: with the lock, non-zero if the final stock is not exactly
//! `initial - sold` or went negative (the demo's self-check). Without it,
//! zero: overselling is what that mode shows.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use fred::prelude::{Builder, Client, ClientLike, Config, Expiration, KeysInterface};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use redlock_tokio::{CancellationToken, LockManager, LockOptions, RetryPolicy, WithLockError};
use serde::{Deserialize, Serialize};

/// Key of the stock counter (data, not a lock key).
const STOCK_KEY: &str = "demo:stock";
/// The locked resource (key `redlock:demo:stock` on every master).
const RESOURCE: &str = "demo:stock";

#[derive(Parser, Debug)]
#[command(
    about = "Two web servers behind a round-robin load balancer sell from one Redis stock counter, with or without Redlock"
)]
struct Args {
    /// Redlock master URLs, comma-separated.
    #[arg(long, env = "REDLOCK_MASTERS", value_delimiter = ',', required = true)]
    masters: Vec<String>,
    /// Where the stock counter lives (default: the first master).
    #[arg(long)]
    data_url: Option<String>,
    /// Sell without the lock, to show the race.
    #[arg(long)]
    no_lock: bool,
    /// Concurrent purchase requests in the burst.
    #[arg(long, default_value_t = 40)]
    requests: usize,
    /// Initial stock.
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

/// Runs the demo; `Ok(false)` when the self-check fails.
async fn run(args: Args) -> Result<bool, Error> {
    let data_url = args
        .data_url
        .clone()
        .or_else(|| args.masters.first().cloned())
        .ok_or("no master given")?;
    let mode = if args.no_lock {
        "WITHOUT the lock"
    } else {
        "WITH the lock"
    };
    println!("masters: {}", args.masters.join(", "));
    println!(
        "stock counter: {STOCK_KEY} on {data_url}; {} purchases, stock {}, {mode}",
        args.requests, args.stock
    );

    // The stock, reset for this run.
    let admin = connect_data(&data_url).await?;
    admin
        .set::<(), _, _>(
            STOCK_KEY,
            args.stock,
            Some(Expiration::EX(3600)),
            None,
            false,
        )
        .await?;

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
    println!(
        "server A on http://{}, server B on http://{}, load balancer on http://{lb_addr}",
        addrs[0], addrs[1]
    );
    println!();

    // The burst: every request at once, through the load balancer.
    let client: HttpClient<HttpConnector, Empty<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    let t0 = Instant::now();
    let replies = futures::future::join_all((0..args.requests).map(|id| {
        let client = client.clone();
        async move { (id, purchase(&client, lb_addr, id).await) }
    }))
    .await;
    let elapsed = t0.elapsed();

    let mut sold = 0i64;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let mut per_server = std::collections::BTreeMap::<String, usize>::new();
    for (id, reply) in &replies {
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
                let lock = if args.no_lock {
                    String::new()
                } else {
                    format!("lock wait {:>3} ms", p.lock_wait_ms)
                };
                let detail = p
                    .detail
                    .as_deref()
                    .map(|d| format!("  ({d})"))
                    .unwrap_or_default();
                println!(
                    "req {id:>3}  server {}  {:<16} {stock:<15} {lock}{detail}",
                    p.server,
                    p.outcome.label()
                );
            }
            Err(e) => {
                *counts.entry("http-error").or_default() += 1;
                println!("req {id:>3}  -- http error: {e}");
            }
        }
    }
    let final_stock: i64 = admin
        .get::<Option<i64>, _>(STOCK_KEY)
        .await?
        .ok_or("stock key vanished")?;
    let report = |n: &str| counts.get(n).copied().unwrap_or(0);

    println!();
    println!(
        "summary ({mode}): {} requests in {elapsed:.0?}",
        args.requests
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
    let ok = if args.no_lock {
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
    };

    // Give everything back: every lock released, every background task done.
    for b in &backends {
        if let Some(locks) = &b.locks {
            let r = locks.shutdown(Duration::from_secs(2)).await;
            if !r.is_clean() {
                println!("  server {} shutdown: {r}", b.name);
            }
        }
    }
    stop.cancel();
    Ok(ok)
}

async fn connect_data(url: &str) -> Result<Client, Error> {
    let client = Builder::from_config(Config::from_url(url)?).build()?;
    client.init().await?;
    Ok(client)
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

/// The purchase handler of a web server.
async fn buy(State(b): State<Backend>) -> Json<Purchase> {
    let start = Instant::now();
    let purchase = |outcome, before, after, detail: Option<String>| Purchase {
        server: b.name.to_owned(),
        outcome,
        before,
        after,
        lock_wait_ms: 0,
        detail,
    };
    let Some(locks) = &b.locks else {
        return Json(
            sell(&b, None)
                .await
                .unwrap_or_else(|e| purchase(Outcome::Error, None, None, Some(e.to_string()))),
        );
    };
    // Wait a little for a busy lock (jittered backoff, not a spin), then
    // give up: the client is told "refused" rather than kept waiting.
    let opts = LockOptions::new()
        .retry(RetryPolicy::unbounded(
            Duration::from_millis(5),
            Duration::from_millis(40),
        ))
        .wait(Some(b.lock_wait));
    let result = locks
        .with_lock_opts(RESOURCE, &opts, |status| {
            let b = b.clone();
            let waited = start.elapsed();
            async move {
                let mut p = sell(&b, Some(&status)).await;
                if let Ok(p) = &mut p {
                    p.lock_wait_ms = waited.as_millis() as u64;
                }
                p
            }
        })
        .await;
    Json(match result {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => purchase(Outcome::Error, None, None, Some(e.to_string())),
        Err(WithLockError::Acquire(e)) if e.is_contended() => {
            let mut p = purchase(Outcome::RefusedByLock, None, None, None);
            p.lock_wait_ms = start.elapsed().as_millis() as u64;
            p
        }
        Err(WithLockError::Lost(reason)) => {
            purchase(Outcome::LockLost, None, None, Some(reason.to_string()))
        }
        Err(e) => purchase(Outcome::Error, None, None, Some(e.to_string())),
    })
}

/// Read, work, write: the critical section.
async fn sell(b: &Backend, lock: Option<&redlock_tokio::LockStatus>) -> Result<Purchase, Error> {
    let stock: i64 = b
        .data
        .get::<Option<i64>, _>(STOCK_KEY)
        .await?
        .ok_or("no stock key")?;
    tokio::time::sleep(b.work).await;
    let mut p = Purchase {
        server: b.name.to_owned(),
        outcome: Outcome::SoldOut,
        before: Some(stock),
        after: None,
        lock_wait_ms: 0,
        detail: None,
    };
    if stock > 0 {
        // Check the lock right before the side effect.
        if let Some(status) = lock {
            if !status.is_valid() {
                p.outcome = Outcome::LockLost;
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

/// One purchase through the load balancer.
async fn purchase(
    client: &HttpClient<HttpConnector, Empty<Bytes>>,
    lb: SocketAddr,
    id: usize,
) -> Result<Purchase, Error> {
    let req = hyper::Request::post(format!("http://{lb}/buy"))
        .header("x-request-id", id.to_string())
        .body(Empty::new())?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(serde_json::from_slice(&body)?)
}
