//! Tests of the spawner and the RESP client, against real `redis-server` processes.

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redlock_testing::{
    redis_server_path, Connection, Error, Masters, Persistence, RedisServer, Reply, ServerOptions,
};

fn proc_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn ping(server: &RedisServer) -> Reply {
    server.cmd(&["PING"]).expect("PING")
}

#[test]
fn redis_server_is_on_path() {
    let path = redis_server_path().expect("redis-server must be installed for these tests");
    assert!(path.ends_with("redis-server"));
}

#[test]
fn start_answers_ping() {
    let server = RedisServer::start();
    assert_eq!(ping(&server), Reply::Simple("PONG".into()));
    assert!(server.is_running());
    assert!(!server.is_paused());
    assert_ne!(server.port(), 0);
    assert_eq!(server.addr().port(), server.port());
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert!(proc_exists(server.pid()));
    assert!(server.dir().is_dir());
    // The server really runs without persistence.
    let aof = server
        .cmd(&["CONFIG", "GET", "appendonly"])
        .expect("CONFIG");
    assert_eq!(aof.as_array().and_then(|a| a[1].as_str()), Some("no"));
    let save = server.cmd(&["CONFIG", "GET", "save"]).expect("CONFIG");
    assert_eq!(save.as_array().and_then(|a| a[1].as_str()), Some(""));
}

#[test]
fn set_get_round_trip_and_helpers() {
    let server = RedisServer::start();
    assert!(server
        .cmd(&["SET", "redlock:a", "v1", "PX", "60000"])
        .expect("SET")
        .is_ok());
    assert!(server.cmd(&["SET", "other", "x"]).expect("SET").is_ok());
    assert_eq!(
        server.cmd(&["GET", "redlock:a"]).expect("GET"),
        Reply::Bulk(Some(b"v1".to_vec()))
    );
    assert_eq!(server.get("redlock:a").as_deref(), Some("v1"));
    assert_eq!(server.get("missing"), None);
    let pttl = server.pttl("redlock:a");
    assert!(pttl > 0 && pttl <= 60_000, "pttl {pttl}");
    assert_eq!(server.pttl("other"), -1);
    assert_eq!(server.pttl("missing"), -2);
    assert_eq!(server.keys("redlock:*"), vec!["redlock:a".to_owned()]);
    // Error replies are values, not transport errors.
    let err = server.cmd(&["INCR", "other"]).expect("INCR");
    assert!(err.is_error(), "{err:?}");
    assert_eq!(
        server.cmd(&["DEL", "other"]).expect("DEL").as_int(),
        Some(1)
    );
}

#[test]
fn keys_scans_beyond_one_batch() {
    let server = RedisServer::start();
    let mut conn = server.connection().expect("connect");
    for i in 0..2500 {
        let k = format!("redlock:{i}");
        conn.call(&["SET", &k, "1"]).expect("SET");
    }
    conn.call(&["SET", "unrelated", "1"]).expect("SET");
    let keys = server.keys("redlock:*");
    assert_eq!(keys.len(), 2500);
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 2500);
}

#[test]
fn pause_times_out_and_resume_answers_again() {
    let server = RedisServer::start();
    server.pause();
    assert!(server.is_paused());
    assert!(server.is_running(), "a paused server is still running");
    // The kernel still accepts the connection...
    let _raw = TcpStream::connect_timeout(&server.addr(), Duration::from_secs(1))
        .expect("paused server still accepts TCP connections");
    // ...but nobody answers.
    let err = server
        .cmd_timeout(&["PING"], Duration::from_millis(300))
        .expect_err("a paused server must not answer");
    assert!(err.is_timeout(), "{err:?}");
    server.resume();
    assert!(!server.is_paused());
    assert_eq!(ping(&server), Reply::Simple("PONG".into()));
}

#[test]
fn kill_stops_the_process_and_refuses_connections() {
    let mut server = RedisServer::start();
    let pid = server.pid();
    server.kill();
    assert!(!server.is_running());
    assert!(!proc_exists(pid), "killed process must be reaped");
    let err = server
        .cmd(&["PING"])
        .expect_err("killed server must not answer");
    assert!(err.is_connection_refused(), "{err:?}");
    // Killing twice is a no-op.
    server.kill();
}

#[test]
fn kill_while_paused() {
    let mut server = RedisServer::start();
    server.pause();
    server.kill();
    assert!(!server.is_running());
    assert!(!server.is_paused());
    server.restart();
    assert_eq!(ping(&server), Reply::Simple("PONG".into()));
}

#[test]
fn restart_with_aof_always_keeps_data() {
    let opts = ServerOptions::default().with_persistence(Persistence::AppendFsyncAlways);
    let mut server = RedisServer::start_with(opts);
    let port = server.port();
    let old_pid = server.pid();
    assert!(server.cmd(&["SET", "k", "v"]).expect("SET").is_ok());
    assert!(server
        .cmd(&["SET", "ttl", "v", "PX", "60000"])
        .expect("SET")
        .is_ok());
    server.kill();
    server.restart();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), old_pid);
    assert_eq!(server.get("k").as_deref(), Some("v"));
    let pttl = server.pttl("ttl");
    assert!(pttl > 0 && pttl <= 60_000, "pttl {pttl}");
}

#[test]
fn restart_without_persistence_loses_data() {
    let mut server = RedisServer::start();
    let port = server.port();
    assert!(server.cmd(&["SET", "k", "v"]).expect("SET").is_ok());
    server.kill();
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.get("k"), None);
    assert!(server.keys("*").is_empty());
}

#[test]
fn restart_of_a_running_server_kills_it_first() {
    let mut server = RedisServer::start();
    let old_pid = server.pid();
    server.restart();
    assert!(!proc_exists(old_pid));
    assert_ne!(server.pid(), old_pid);
    assert_eq!(ping(&server), Reply::Simple("PONG".into()));
}

#[test]
fn three_masters_are_independent() {
    let mut masters = Masters::start(3);
    assert_eq!(masters.len(), 3);
    let ports: HashSet<u16> = masters.iter().map(RedisServer::port).collect();
    assert_eq!(ports.len(), 3, "ports must be distinct");
    let pids: HashSet<u32> = masters.iter().map(RedisServer::pid).collect();
    assert_eq!(pids.len(), 3);
    for m in &masters {
        assert_eq!(ping(m), Reply::Simple("PONG".into()));
        let role = m.cmd(&["ROLE"]).expect("ROLE");
        assert_eq!(role.as_array().and_then(|a| a[0].as_str()), Some("master"));
    }
    let urls = masters.urls();
    assert_eq!(urls.len(), 3);
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(url, &format!("redis://127.0.0.1:{}", masters.get(i).port()));
    }
    assert_eq!(masters.urls_csv(), urls.join(","));

    masters.get(0).cmd(&["SET", "redlock:r", "a"]).expect("SET");
    masters.get(2).cmd(&["SET", "redlock:r", "c"]).expect("SET");
    masters.get(1).cmd(&["SET", "nolock", "b"]).expect("SET");
    // Independent: writes do not propagate.
    assert_eq!(masters.get(1).get("redlock:r"), None);
    assert_eq!(
        masters.keys_everywhere("redlock:*"),
        vec![(0, "redlock:r".to_owned()), (2, "redlock:r".to_owned())]
    );
    masters.get_mut(2).kill();
    assert_eq!(
        masters.keys_everywhere("redlock:*"),
        vec![(0, "redlock:r".to_owned())]
    );
    masters[0].pause();
    assert!(masters.keys_everywhere("redlock:*").is_empty());
    masters[0].resume();
}

#[test]
fn password_is_required_and_used_by_the_harness() {
    let server = RedisServer::start_with(ServerOptions::default().with_password("s3cr@t/pw"));
    assert_eq!(ping(&server), Reply::Simple("PONG".into()));
    assert!(server.cmd(&["SET", "k", "v"]).expect("SET").is_ok());
    assert_eq!(server.get("k").as_deref(), Some("v"));
    assert_eq!(
        server.url(),
        format!("redis://default:s3cr%40t%2Fpw@127.0.0.1:{}", server.port())
    );
    let mut raw = Connection::connect(server.addr(), Duration::from_secs(5)).expect("connect");
    let reply = raw.call(&["GET", "k"]).expect("GET");
    assert!(
        reply.as_error().is_some_and(|e| e.starts_with("NOAUTH")),
        "{reply:?}"
    );
    let mut wrong = Connection::connect(server.addr(), Duration::from_secs(5)).expect("connect");
    assert!(matches!(wrong.auth("nope"), Err(Error::Auth(_))));
}

#[test]
fn drop_kills_the_process_and_removes_the_dir() {
    let server = RedisServer::start();
    let pid = server.pid();
    let dir = server.dir().to_owned();
    assert!(proc_exists(pid));
    drop(server);
    assert!(!proc_exists(pid), "redis pid {pid} still alive after drop");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn drop_kills_a_paused_process() {
    let server = RedisServer::start();
    let pid = server.pid();
    server.pause();
    drop(server);
    assert!(
        !proc_exists(pid),
        "paused redis pid {pid} still alive after drop"
    );
}

#[test]
fn drop_runs_on_panic_unwinding() {
    static PID: AtomicU32 = AtomicU32::new(0);
    let result = std::panic::catch_unwind(|| {
        let masters = Masters::start(2);
        PID.store(masters.get(1).pid(), Ordering::SeqCst);
        masters.get(1).pause();
        panic!("simulated failing assertion");
    });
    assert!(result.is_err());
    let pid = PID.load(Ordering::SeqCst);
    assert_ne!(pid, 0);
    assert!(
        !proc_exists(pid),
        "redis pid {pid} leaked by a panicking test"
    );
}

#[test]
fn extra_args_are_passed() {
    let server = RedisServer::start_with(
        ServerOptions::default().with_arg("maxmemory-policy", "noeviction"),
    );
    let reply = server
        .cmd(&["CONFIG", "GET", "maxmemory-policy"])
        .expect("CONFIG");
    assert_eq!(
        reply.as_array().and_then(|a| a[1].as_str()),
        Some("noeviction")
    );
}

#[test]
fn many_servers_in_parallel_threads() {
    let handles: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| Masters::start(2)))
        .collect();
    let all: Vec<Masters> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let ports: HashSet<u16> = all
        .iter()
        .flat_map(|m| m.iter().map(RedisServer::port))
        .collect();
    assert_eq!(ports.len(), 8);
    for m in all.iter().flat_map(|m| m.iter()) {
        assert_eq!(ping(m), Reply::Simple("PONG".into()));
    }
}

#[test]
fn restart_waits_for_a_briefly_busy_port() {
    let mut server = RedisServer::start();
    let port = server.port();
    server.kill();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind freed port");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        drop(squatter);
    });
    server.restart();
    release.join().expect("thread");
    assert_eq!(server.port(), port);
    assert_eq!(ping(&server), Reply::Simple("PONG".into()));
}

#[test]
fn restart_on_a_taken_port_panics_with_the_log() {
    let mut server = RedisServer::start();
    let port = server.port();
    server.kill();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind freed port");
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.restart()))
        .expect_err("restart on a taken port must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("could not restart"), "{msg}");
    assert!(msg.contains("Address already in use"), "{msg}");
    assert!(!server.is_running());
}

#[test]
fn handles_can_be_shared_across_threads_and_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RedisServer>();
    assert_send_sync::<Masters>();
    assert_send_sync::<Reply>();
    assert_send_sync::<Error>();
}

#[test]
fn a_failed_start_is_an_error_with_the_servers_own_words() {
    let err = Masters::try_start_with(
        2,
        ServerOptions::default().with_arg("no-such-directive", "x"),
    )
    .expect_err("redis-server refuses an unknown directive");
    let Error::Start { reason, log, .. } = &err else {
        panic!("expected Error::Start, got {err:?}");
    };
    assert!(reason.contains("exited early"), "{reason}");
    assert!(log.contains("no-such-directive"), "{log}");
    assert!(
        err.to_string().contains("could not start redis-server"),
        "{err}"
    );
}

#[test]
fn try_start_gives_a_working_server() {
    let server = RedisServer::try_start_with(ServerOptions::default()).expect("start");
    assert_eq!(ping(&server), Reply::Simple("PONG".into()));
}

/// The parent-death signal is tied to the spawning thread: servers
/// started from a thread that then ends are killed by the kernel, with no
/// destructor involved (the `redlock` CLI relies on this when SIGKILLed).
#[cfg(target_os = "linux")]
#[test]
fn parent_death_signal_kills_servers_when_their_spawning_thread_ends() {
    let opts = ServerOptions::default().with_parent_death_signal(redlock_testing::Signal::KILL);
    let masters = std::thread::spawn(move || Masters::start_with(2, opts))
        .join()
        .expect("thread");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while masters.iter().any(RedisServer::is_running) {
        assert!(
            std::time::Instant::now() < deadline,
            "servers outlived the thread that spawned them"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Without the option, the same servers live on.
    let masters = std::thread::spawn(|| Masters::start(1))
        .join()
        .expect("thread");
    std::thread::sleep(Duration::from_millis(200));
    assert!(masters[0].is_running());
}
