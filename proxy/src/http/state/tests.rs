//! Quota windows with an injected clock, suspensions, the disk snapshot,
//! and two instances sharing counts and suspensions through a real Redis
//! at 127.0.0.1:6379 (each test under its own prefix, removed after).

use super::*;

/// 2026-11-26T10:00:00Z, on a minute boundary.
const T0: u64 = 1_796_032_800;
const CST: i32 = 8 * 3600;

async fn memory() -> Arc<CallerState> {
    CallerState::start(StateStore::Memory, Duration::from_secs(1))
        .await
        .expect("memory state")
}

fn q(rpm: Option<u64>, rpd: Option<u64>, recm: Option<u64>, recd: Option<u64>) -> Quota {
    Quota {
        requests_per_minute: rpm,
        requests_per_day: rpd,
        records_per_minute: recm,
        records_per_day: recd,
    }
}

#[test]
fn windows_align_to_the_minute_and_the_local_day() {
    assert_eq!(T0 % 60, 0);
    assert_eq!(minute(T0 + 59), (T0, T0 + 60));
    assert_eq!(minute(T0 + 60), (T0 + 60, T0 + 120));
    // UTC midnight of 2026-11-26.
    let utc_midnight = T0 - 10 * 3600;
    assert_eq!(day(T0, 0), (utc_midnight, utc_midnight + DAY_SECS));
    // At UTC+8, 10:00Z is 18:00 local: the day began at 16:00Z the day before.
    assert_eq!(day(T0, CST).0, utc_midnight - CST as u64);
    // At 16:00Z (local midnight) a new local day begins.
    let local_midnight = utc_midnight + 16 * 3600;
    assert_eq!(day(local_midnight - 1, CST).1, local_midnight);
    assert_eq!(day(local_midnight, CST).0, local_midnight);
    // West of UTC.
    assert_eq!(day(T0, -5 * 3600).0, utc_midnight + 5 * 3600);
}

#[tokio::test]
async fn requests_per_minute_roll_over() {
    let s = memory().await;
    let quota = q(Some(3), None, None, None);
    for i in 0..3 {
        s.admit("a", &quota, T0 + i, 0).expect("within quota");
    }
    let e = s.admit("a", &quota, T0 + 10, 0).unwrap_err();
    assert_eq!(
        e,
        QuotaExceeded {
            which: "requests_per_minute",
            limit: 3,
            used: 3,
            retry_after_secs: 50,
        }
    );
    // A refused request is not counted; other callers are separate.
    assert_eq!(s.usage("a", T0 + 10, 0).requests_this_minute, 3);
    s.admit("b", &quota, T0 + 10, 0).expect("another caller");
    // Next minute.
    s.admit("a", &quota, T0 + 60, 0).expect("new minute");
    let u = s.usage("a", T0 + 60, 0);
    assert_eq!((u.requests_this_minute, u.requests_today), (1, 4));
    assert_eq!(u.minute_start, T0 + 60);
    // Usage of a later window without a request reads zero.
    assert_eq!(s.usage("a", T0 + 600, 0).requests_this_minute, 0);
}

#[tokio::test]
async fn per_day_outlasts_per_minute() {
    let s = memory().await;
    let quota = q(Some(10), Some(5), None, None);
    for i in 0..5 {
        s.admit("a", &quota, T0 + i * 60, CST)
            .expect("within quota");
    }
    let e = s.admit("a", &quota, T0 + 400, CST).unwrap_err();
    assert_eq!(e.which, "requests_per_day");
    let (_, day_end) = day(T0, CST);
    assert_eq!(e.retry_after_secs, day_end - (T0 + 400));
    // Still refused in later minutes of the same local day...
    assert!(s.admit("a", &quota, day_end - 1, CST).is_err());
    // ...and allowed once the local day turns.
    s.admit("a", &quota, day_end, CST).expect("next local day");
    // With both exceeded, the longer wait is reported.
    let tight = q(Some(1), Some(1), None, None);
    s.admit("c", &tight, T0, 0).expect("first");
    assert_eq!(
        s.admit("c", &tight, T0 + 1, 0).unwrap_err().which,
        "requests_per_day"
    );
}

#[tokio::test]
async fn day_boundary_follows_the_offset() {
    let s = memory().await;
    let quota = q(None, Some(1), None, None);
    let utc_midnight = T0 - 10 * 3600;
    let local_midnight = utc_midnight + 16 * 3600; // 00:00 at UTC+8
    s.admit("a", &quota, local_midnight - 10, CST)
        .expect("late on day 1");
    // Same UTC day, but a new local day at UTC+8.
    s.admit("a", &quota, local_midnight + 10, CST)
        .expect("early on day 2");
    // At UTC both fall in one day.
    let s = memory().await;
    s.admit("a", &quota, local_midnight - 10, 0).expect("first");
    assert!(s.admit("a", &quota, local_midnight + 10, 0).is_err());
}

#[tokio::test]
async fn records_refuse_once_reached() {
    let s = memory().await;
    let quota = q(None, None, Some(100), Some(150));
    s.admit("a", &quota, T0, 0).expect("nothing used");
    // One response may overshoot...
    s.add_records("a", 120, T0 + 1, 0);
    // ...then the next request is refused.
    let e = s.admit("a", &quota, T0 + 2, 0).unwrap_err();
    assert_eq!((e.which, e.limit, e.used), ("records_per_minute", 100, 120));
    // Next minute: the day still has room (120 < 150).
    s.admit("a", &quota, T0 + 60, 0).expect("new minute");
    s.add_records("a", 40, T0 + 61, 0);
    let e = s.admit("a", &quota, T0 + 62, 0).unwrap_err();
    assert_eq!((e.which, e.used), ("records_per_day", 160));
    let u = s.usage("a", T0 + 62, 0);
    assert_eq!(
        (u.records_this_minute, u.records_today, u.requests_today),
        (40, 160, 2)
    );
    // Unlimited quota admits anything.
    s.add_records("b", u64::MAX, T0, 0);
    s.admit("b", &Quota::default(), T0, 0).expect("no quota");
}

#[tokio::test]
async fn suspend_and_resume() {
    let s = memory().await;
    assert!(s.suspended("a").is_none());
    assert!(s.suspend("a", "bulk export at night".into(), "ops:alice".into()));
    assert!(
        !s.suspend("a", "again".into(), "ops:bob".into()),
        "first reason stays"
    );
    let got = s.suspended("a").expect("suspended");
    assert_eq!(
        (got.reason.as_str(), got.by.as_str()),
        ("bulk export at night", "ops:alice")
    );
    assert!(s.suspended("b").is_none());
    assert!(s.suspend("b", "x".repeat(5000), "rule:r1".into()));
    assert_eq!(
        s.suspended("b").map(|s| s.reason.len()),
        Some(MAX_REASON_BYTES)
    );
    assert_eq!(s.suspensions().len(), 2);
    assert_eq!(s.resume("a").map(|s| s.by), Some("ops:alice".into()));
    assert!(s.resume("a").is_none());
    assert!(s.suspended("a").is_none());
    assert_eq!(s.suspensions().len(), 1);
}

#[tokio::test]
async fn disk_round_trip_drops_ended_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = StateStore::Disk {
        dir: dir.path().join("state"),
    };
    let now = unix_now();
    let quota = q(Some(1000), Some(1000), None, None);
    let s = CallerState::start(store.clone(), Duration::from_secs(60))
        .await
        .expect("start");
    for _ in 0..3 {
        s.admit("a", &quota, now, CST).expect("admit");
    }
    s.add_records("a", 42, now, CST);
    // A window that has already ended (yesterday) is not restored.
    s.admit("old", &quota, now - 2 * DAY_SECS, CST)
        .expect("admit");
    s.suspend("b", "why".into(), "ops".into());
    s.sync().await;
    let path = dir.path().join("state").join(SNAPSHOT_FILE);
    assert!(path.exists());
    drop(s);

    let s = CallerState::start(store.clone(), Duration::from_secs(60))
        .await
        .expect("restart");
    let u = s.usage("a", now, CST);
    // (The minute window may have ended between the two starts.)
    assert_eq!(u.requests_today, 3);
    assert_eq!(u.records_today, 42);
    assert_eq!(s.usage("old", now - 2 * DAY_SECS, CST).requests_today, 0);
    assert_eq!(s.suspended("b").map(|x| x.reason), Some("why".into()));
    // Counting continues from the loaded totals.
    s.admit("a", &quota, now, CST).expect("admit");
    assert_eq!(s.usage("a", now, CST).requests_today, 4);
    // Shutdown saves.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(s.clone().run_sync(rx));
    s.resume("b");
    tx.send(true).expect("shutdown");
    task.await.expect("sync task");
    let back = store::read_file(&path).expect("read");
    assert!(back.suspensions.is_empty());
    assert!(back
        .counters
        .iter()
        .any(|c| c.caller == "a" && c.counter == "req:d" && c.count == 4));

    std::fs::write(&path, b"{garbage").expect("garbage");
    let e = CallerState::start(store, Duration::from_secs(60))
        .await
        .err()
        .expect("corrupt snapshot refused");
    assert!(e.to_string().contains("move it aside"), "{e}");
}

fn redis_prefix(test: &str) -> String {
    format!("danxia-test-{test}-{}-{}", std::process::id(), unix_now())
}

#[tokio::test]
async fn redis_instances_share_counts_and_suspensions() {
    let prefix = redis_prefix("state");
    let store = StateStore::Redis {
        url: "redis://127.0.0.1:6379/".into(),
        prefix: prefix.clone(),
    };
    let a = CallerState::start(store.clone(), Duration::from_secs(60))
        .await
        .expect("redis at 127.0.0.1:6379");
    let b = CallerState::start(store, Duration::from_secs(60))
        .await
        .expect("second instance");
    let now = unix_now();
    let quota = q(Some(1000), Some(10), None, Some(100));
    for _ in 0..4 {
        a.admit("dept", &quota, now, CST).expect("a admits");
    }
    for _ in 0..3 {
        b.admit("dept", &quota, now, CST).expect("b admits");
    }
    a.add_records("dept", 60, now, CST);
    a.sync().await;
    b.sync().await;
    // b now sees a's counts; a sees b's after its next sync.
    assert_eq!(b.usage("dept", now, CST).requests_today, 7);
    assert_eq!(b.usage("dept", now, CST).records_today, 60);
    a.sync().await;
    assert_eq!(a.usage("dept", now, CST).requests_today, 7);
    // b adds records: together over the records quota.
    b.add_records("dept", 50, now, CST);
    b.sync().await;
    a.sync().await;
    assert_eq!(
        a.admit("dept", &quota, now, CST).unwrap_err().which,
        "records_per_day"
    );
    // The shared counter in Redis holds the sum.
    let Backend::Redis(r) = &a.backend else {
        panic!("redis backend")
    };
    let (d, _) = day(now, CST);
    let key = r.count_key("dept", "req:d", d);
    let total = r
        .exchange(&[Exchange {
            key,
            delta: 0,
            expire_secs: 0,
        }])
        .await
        .expect("read");
    assert_eq!(total, vec![7]);

    // Suspension on a reaches b at b's next sync (after a's push).
    assert!(a.suspend("dept", "investigation".into(), "ops".into()));
    assert!(a.suspended("dept").is_some(), "immediate locally");
    assert!(b.suspended("dept").is_none());
    a.sync().await;
    b.sync().await;
    assert_eq!(b.suspended("dept").map(|s| s.by), Some("ops".into()));
    // A fresh instance loads the suspension at start.
    let c = CallerState::start(
        StateStore::Redis {
            url: "redis://127.0.0.1:6379/".into(),
            prefix: prefix.clone(),
        },
        Duration::from_secs(60),
    )
    .await
    .expect("third instance");
    assert!(c.suspended("dept").is_some());
    // Resume on b reaches a.
    assert!(b.resume("dept").is_some());
    b.sync().await;
    a.sync().await;
    assert!(a.suspended("dept").is_none());

    r.clear().await.expect("clean up");
}

#[tokio::test]
async fn redis_sync_task_pushes_suspensions_promptly() {
    let prefix = redis_prefix("nudge");
    let store = StateStore::Redis {
        url: "redis://127.0.0.1:6379/".into(),
        prefix,
    };
    // A long interval: only the nudge can make the sync happen in time.
    let a = CallerState::start(store.clone(), Duration::from_secs(3600))
        .await
        .expect("redis");
    let b = CallerState::start(store, Duration::from_secs(3600))
        .await
        .expect("redis");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(a.clone().run_sync(rx));
    a.suspend("x", "r".into(), "ops".into());
    let mut seen = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        b.sync().await;
        if b.suspended("x").is_some() {
            seen = true;
            break;
        }
    }
    assert!(seen, "the nudged sync pushed the suspension");
    tx.send(true).expect("shutdown");
    task.await.expect("task");
    let Backend::Redis(r) = &a.backend else {
        panic!("redis backend")
    };
    r.clear().await.expect("clean up");
}

#[tokio::test]
async fn unreachable_redis_is_a_start_error() {
    let e = CallerState::start(
        StateStore::Redis {
            url: "redis://127.0.0.1:1/".into(),
            prefix: "x".into(),
        },
        Duration::from_secs(1),
    )
    .await
    .err()
    .expect("no redis on port 1");
    assert!(e.to_string().contains("redis"), "{e}");
}
