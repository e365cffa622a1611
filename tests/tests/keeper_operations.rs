//! Operating a real 3-node cluster with `pg_autoctl`, command by command:
//! `--help` everywhere, `version`, `completion`, every `show`, `status`,
//! `config get|set|check`, `reload`, `get|set node|formation`, the
//! refusals (exit 1, nothing changed), maintenance, switchover, promotion,
//! failover, `set node metadata`, `watch` in a tmux pane, `show systemd`
//! checked by `systemd-analyze verify`, `stop`, `drop node` (local with
//! `--destroy`, `--force`, remote) and `drop monitor --destroy`.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{binary, signal, Formation};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Run `pg_autoctl args`, which must succeed; its stdout.
fn ok(f: &Formation, args: &[&str]) -> String {
    let o = f.autoctl(args);
    assert!(
        o.status.success(),
        "pg_autoctl {} failed ({:?}):\n{}\n{}",
        args.join(" "),
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Run `pg_autoctl args`, which must exit with `code` and say `why` on
/// stderr; its stderr.
fn fails(f: &Formation, args: &[&str], code: i32, why: &str) -> String {
    let o = f.autoctl(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "pg_autoctl {}:\n{}\n{}",
        args.join(" "),
        stdout(&o),
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains(why),
        "pg_autoctl {} does not say \"{why}\":\n{err}",
        args.join(" ")
    );
    err
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Whether `pid` runs (a zombie waiting for its parent does not).
fn running(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

/// Wait until `pid` is gone.
fn wait_gone(what: &str, pid: i32) {
    let deadline = Instant::now() + LIMIT;
    while running(pid) {
        assert!(Instant::now() < deadline, "{what} (pid {pid}) still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tmux server on a private socket, killed by its PID when dropped.
struct Tmux {
    socket: PathBuf,
    server: i32,
    pane: i32,
}

impl Tmux {
    fn start(socket: &Path, command: &str) -> Tmux {
        let st = Command::new("tmux")
            .arg("-S")
            .arg(socket)
            .args(["new-session", "-d", "-x", "200", "-y", "50", command])
            .stdin(Stdio::null())
            .status()
            .expect("run tmux (apt-get install tmux)");
        assert!(st.success(), "tmux new-session failed");
        let pid = |fmt: &str| -> i32 {
            let o = Command::new("tmux")
                .arg("-S")
                .arg(socket)
                .args(["display-message", "-p", fmt])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        Tmux {
            socket: socket.to_path_buf(),
            server: pid("#{pid}"),
            pane: pid("#{pane_pid}"),
        }
    }

    fn capture(&self) -> String {
        let o = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Wait until the pane shows what `check` wants.
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.capture();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the watch pane never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    /// SIGTERM to `watch` and to the server, SIGKILL after 10 s; never
    /// panics (it may run while a failed test unwinds).
    fn drop(&mut self) {
        for pid in [self.pane, self.server] {
            signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if running(pid) {
                signal(pid, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The nodes-table line of `name` in a watch frame.
fn watch_row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} |")))
}

/// `systemd-analyze verify` on a unit named pgautofailover.service.
fn verify_unit(dir: &Path, unit: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("pgautofailover.service");
    std::fs::write(&file, unit).unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .expect("run systemd-analyze (apt-get install systemd)");
    assert!(
        o.status.success() && !stderr(&o).contains("pgautofailover.service"),
        "systemd-analyze verify:\n{}\n{}\n{unit}",
        stdout(&o),
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operating_a_three_node_cluster() {
    // Without a cluster: help, version, completion.
    let mut f = Formation::with_monitor().await;
    for words in [
        vec![],
        vec!["create"],
        vec!["drop"],
        vec!["drop", "node"],
        vec!["drop", "monitor"],
        vec!["config"],
        vec!["config", "get"],
        vec!["config", "set"],
        vec!["config", "check"],
        vec!["show"],
        vec!["show", "state"],
        vec!["show", "events"],
        vec!["show", "uri"],
        vec!["show", "settings"],
        vec!["show", "standby-names"],
        vec!["show", "file"],
        vec!["show", "systemd"],
        vec!["enable", "maintenance"],
        vec!["disable", "maintenance"],
        vec!["get", "node", "candidate-priority"],
        vec!["get", "node", "replication-quorum"],
        vec!["get", "node", "metadata"],
        vec!["get", "formation", "settings"],
        vec!["get", "formation", "number-sync-standbys"],
        vec!["set", "node", "candidate-priority"],
        vec!["set", "node", "replication-quorum"],
        vec!["set", "node", "metadata"],
        vec!["set", "formation", "number-sync-standbys"],
        vec!["perform", "failover"],
        vec!["perform", "switchover"],
        vec!["perform", "promotion"],
        vec!["watch"],
        vec!["stop"],
        vec!["reload"],
        vec!["status"],
        vec!["version"],
        vec!["completion"],
    ] {
        let mut args = words.clone();
        args.push("--help");
        let out = ok(&f, &args);
        assert!(out.contains("Usage: pg_autoctl"), "{args:?}:\n{out}");
    }
    // Citus is refused, not offered; the `do` tree needs PG_AUTOCTL_DEBUG.
    let top = ok(&f, &["--help"]);
    assert!(!top.contains("activate"), "{top}");
    assert!(!top.contains("\n  do "), "{top}");
    let enable = ok(&f, &["enable", "--help"]);
    for feature in ["secondary", "maintenance", "ssl", "monitor"] {
        assert!(enable.contains(feature), "{feature}:\n{enable}");
    }
    let version = ok(&f, &["version"]);
    assert!(
        version.starts_with("pg_autoctl version 2.0\npg_autoctl extension version 2.0\n"),
        "{version}"
    );
    let v = json(&ok(&f, &["--json", "version"]));
    assert_eq!(v["pg_autoctl"], "2.0");
    assert_eq!(ok(&f, &["--version"]), version);
    let bash = ok(&f, &["completion", "bash"]);
    assert!(bash.contains("switchover") && bash.contains("standby-names"));

    // The cluster.
    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.add_node("node2", &[]);
    f.add_node("node3", &[]);
    f.wait_states(
        &[
            ("node1", "primary"),
            ("node2", "secondary"),
            ("node3", "secondary"),
        ],
        LIMIT,
    )
    .await;
    let pg1 = path(&f.node("node1").pgdata);
    let pg2 = path(&f.node("node2").pgdata);
    let pg3 = path(&f.node("node3").pgdata);
    let mon = path(&f.monitor.pgdata);
    let uri = f.monitor_uri.clone();

    // watch, in a terminal, from the start.
    let env: Vec<String> = f
        .env()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.display()))
        .collect();
    let tmux = Tmux::start(
        &f.dir.join("tmux.sock"),
        &format!(
            "env {} {} watch --pgdata {pg1}",
            env.join(" "),
            binary().display()
        ),
    );
    let screen = tmux.wait_for("the three nodes", |s| {
        ["node1", "node2", "node3"]
            .iter()
            .all(|n| watch_row(s, n).is_some())
            && s.contains("Assigned State")
            && s.contains("Comment")
    });
    assert!(
        watch_row(&screen, "node1").unwrap().contains("primary"),
        "{screen}"
    );

    // show state, events, uri, settings, standby-names.
    let state = ok(&f, &["show", "state", "--pgdata", &pg1]);
    assert!(
        state.starts_with(" Name |  Node |") && state.contains("Host:Port |"),
        "{state}"
    );
    assert_eq!(
        state.lines().filter(|l| l.contains("127.0.0.1:")).count(),
        3,
        "{state}"
    );
    let events = ok(&f, &["show", "events", "--count", "5", "--pgdata", &pg1]);
    let lines: Vec<&str> = events.lines().collect();
    assert_eq!(
        lines[0],
        "                    Event Time |   Node |       Current State |      Assigned State | Comment"
    );
    assert_eq!(
        lines.iter().skip(2).filter(|l| !l.is_empty()).count(),
        5,
        "{events}"
    );
    let ev = json(&ok(
        &f,
        &["--json", "show", "events", "--count", "3", "--pgdata", &pg1],
    ));
    assert_eq!(ev.as_array().unwrap().len(), 3, "{ev}");
    assert!(
        ev[0]["eventid"].is_i64() && ev[0]["description"].is_string(),
        "{ev}"
    );
    let uris = ok(&f, &["show", "uri", "--pgdata", &mon]);
    assert!(
        uris.contains("   formation | default | postgres://"),
        "{uris}"
    );
    let settings = ok(&f, &["show", "settings", "--pgdata", &pg1]);
    assert!(
        settings.starts_with("  Context |    Name |                   Setting | Value"),
        "{settings}"
    );
    assert!(
        settings.contains("formation | default |      number_sync_standbys | 1"),
        "{settings}"
    );
    assert!(settings.contains("primary |   node1 | synchronous_standby_names | 'ANY 1 (pgautofailover_standby_2, pgautofailover_standby_3)'"), "{settings}");
    assert_eq!(
        ok(&f, &["get", "formation", "settings", "--pgdata", &pg1]),
        settings
    );
    let sj = json(&ok(&f, &["--json", "show", "settings", "--monitor", &uri]));
    assert_eq!(sj["nodes"].as_array().unwrap().len(), 6, "{sj}");
    assert_eq!(sj["formation"][0]["value"], "1", "{sj}");
    let names = ok(&f, &["show", "standby-names", "--pgdata", &pg2]);
    let on_primary: String = f
        .node_client("node1")
        .await
        .query_one("SELECT current_setting('synchronous_standby_names')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(names, format!("'{on_primary}'\n"));
    let nj = json(&ok(
        &f,
        &["--json", "show", "standby-names", "--pgdata", &pg2],
    ));
    assert_eq!(nj["group"], 0);
    assert_eq!(nj["synchronous_standby_names"], on_primary.as_str());

    // show file, systemd.
    let files = ok(&f, &["show", "file", "--pgdata", &pg1]);
    assert!(
        files.starts_with("   File | Path\n--------+----------------\n Config | "),
        "{files}"
    );
    assert!(
        files.contains("  State | ")
            && files.contains("   Init | ")
            && files.contains("    Pid | "),
        "{files}"
    );
    let cfg_path = ok(&f, &["show", "file", "--config", "--pgdata", &pg1]);
    let cfg_text = std::fs::read_to_string(cfg_path.trim()).unwrap();
    assert_eq!(
        ok(
            &f,
            &["show", "file", "--config", "--contents", "--pgdata", &pg1]
        ),
        format!("{cfg_text}\n")
    );
    let st = ok(
        &f,
        &["show", "file", "--state", "--contents", "--pgdata", &pg1],
    );
    assert!(
        st.starts_with("Current Role:             primary\nAssigned Role:            primary\n"),
        "{st}"
    );
    let sj = json(&ok(
        &f,
        &[
            "--json",
            "show",
            "file",
            "--state",
            "--contents",
            "--pgdata",
            &pg1,
        ],
    ));
    assert_eq!(
        (sj["current_role"].as_str(), sj["nodeId"].as_i64()),
        (Some("primary"), Some(1))
    );
    let pid1 = f.node("node1").pid().unwrap();
    let pidfile = ok(
        &f,
        &["show", "file", "--pid", "--contents", "--pgdata", &pg1],
    );
    assert_eq!(pidfile.lines().next(), Some(pid1.to_string().as_str()));
    let mon_files = ok(&f, &["--json", "show", "file", "--pgdata", &mon]);
    let mf = json(&mon_files);
    assert!(
        mf["config"].is_string() && mf["pid"].is_string() && mf.get("state").is_none(),
        "{mon_files}"
    );
    for (name, pgdata) in [("node1", &pg1), ("monitor", &mon)] {
        let unit = ok(&f, &["-q", "show", "systemd", "--pgdata", pgdata]);
        assert!(
            unit.contains(&format!("Environment = 'PGDATA={pgdata}'")),
            "{unit}"
        );
        assert!(
            unit.contains(&format!(
                "ExecStart = {} run",
                binary().canonicalize().unwrap().display()
            )),
            "{unit}"
        );
        assert!(unit.contains("Environment = 'XDG_CONFIG_HOME="), "{unit}");
        verify_unit(&f.dir.join(format!("systemd-{name}")), &unit);
    }

    // status.
    let o = f.autoctl(&["status", "--pgdata", &pg1]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("pg_autoctl is running with pid {pid1}")),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("Postgres is serving PGDATA"),
        "{}",
        stderr(&o)
    );
    let sj = json(&ok(&f, &["--json", "status", "--pgdata", &pg2]));
    assert_eq!(
        sj["pg_autoctl"]["pid"],
        i64::from(f.node("node2").pid().unwrap())
    );
    assert_eq!(sj["postgres"]["in_recovery"], true);
    assert_eq!(sj["postgres"]["postmaster"]["status"], "ready");
    ok(&f, &["status", "--pgdata", &mon]);

    // config get|set|check, reload.
    let port1 = f.node("node1").port;
    assert_eq!(
        ok(&f, &["config", "get", "postgresql.port", "--pgdata", &pg1]),
        format!("{port1}\n")
    );
    assert!(
        ok(&f, &["config", "get", "--pgdata", &pg1]).starts_with("[pg_autoctl]\nrole = keeper\n")
    );
    let cj = json(&ok(&f, &["--json", "config", "get", "--pgdata", &pg1]));
    assert_eq!(cj["postgresql"]["port"], i64::from(port1));
    assert_eq!(
        ok(
            &f,
            &[
                "config",
                "set",
                "timeout.network_partition_timeout",
                "25",
                "--pgdata",
                &pg1
            ]
        ),
        "25\n"
    );
    let reloads = |f: &mut Formation| {
        f.node("node1")
            .log_text()
            .matches("Reloaded the configuration")
            .count()
    };
    pgaf_tests::wait::until(
        "node1 to reload its configuration",
        LIMIT,
        Duration::from_millis(100),
        || {
            let n = reloads(&mut f);
            async move { (n >= 1).then_some(()) }
        },
    )
    .await;
    let cfg_path = cfg_path.trim().to_string();
    let before = std::fs::read(&cfg_path).unwrap();
    fails(
        &f,
        &[
            "config",
            "set",
            "postgresql.pg_ctl",
            "/nonexistent/pg_ctl",
            "--pgdata",
            &pg1,
        ],
        1,
        "the configuration was not changed",
    );
    fails(
        &f,
        &["config", "set", "postgresql.port", "abc", "--pgdata", &pg1],
        1,
        "expected a port number",
    );
    fails(
        &f,
        &["config", "set", "nosuch.key", "1", "--pgdata", &pg1],
        1,
        "unknown configuration option",
    );
    assert_eq!(
        std::fs::read(&cfg_path).unwrap(),
        before,
        "a refused config set changed the file"
    );
    let check = ok(&f, &["config", "check", "--pgdata", &pg1]);
    assert!(
        check.contains("pgdata:")
            && check
                .lines()
                .any(|l| l.starts_with("is in recovery:") && l.trim_end().ends_with(" no")),
        "{check}"
    );
    ok(&f, &["reload", "--pgdata", &pg1]);
    pgaf_tests::wait::until(
        "node1 to reload again",
        LIMIT,
        Duration::from_millis(100),
        || {
            let n = reloads(&mut f);
            async move { (n >= 2).then_some(()) }
        },
    )
    .await;

    // get|set node, and the refusals.
    assert_eq!(
        ok(&f, &["get", "node", "candidate-priority", "--pgdata", &pg2]),
        "50\n"
    );
    let q = json(&ok(
        &f,
        &[
            "--json",
            "get",
            "node",
            "replication-quorum",
            "--pgdata",
            &pg2,
        ],
    ));
    assert_eq!(
        q,
        serde_json::json!({"name": "node2", "replication-quorum": true})
    );
    assert_eq!(
        ok(
            &f,
            &[
                "get",
                "node",
                "candidate-priority",
                "--monitor",
                &uri,
                "--name",
                "node3"
            ]
        ),
        "50\n"
    );
    fails(
        &f,
        &["set", "node", "candidate-priority", "101", "--pgdata", &pg2],
        1,
        "out of range",
    );
    fails(
        &f,
        &["set", "node", "candidate-priority", "-1", "--pgdata", &pg2],
        1,
        "out of range",
    );
    fails(
        &f,
        &[
            "set",
            "node",
            "candidate-priority",
            "--pgdata",
            &pg2,
            "--",
            "-1",
        ],
        1,
        "out of range",
    );
    fails(
        &f,
        &[
            "set",
            "node",
            "candidate-priority",
            "10",
            "--monitor",
            &uri,
            "--name",
            "nosuch",
        ],
        1,
        "is not registered",
    );
    fails(
        &f,
        &[
            "get",
            "node",
            "candidate-priority",
            "--monitor",
            &uri,
            "--name",
            "nosuch",
        ],
        1,
        "is not registered",
    );
    let set3 = ok(
        &f,
        &["set", "node", "candidate-priority", "0", "--pgdata", &pg3],
    );
    assert!(
        set3.contains("apply_settings") && set3.ends_with("0\n"),
        "{set3}"
    );
    fails(
        &f,
        &["set", "node", "candidate-priority", "0", "--pgdata", &pg2],
        1,
        "without any failover candidate",
    );
    assert_eq!(
        ok(&f, &["get", "node", "candidate-priority", "--pgdata", &pg2]),
        "50\n"
    );
    assert!(ok(
        &f,
        &["set", "node", "candidate-priority", "90", "--pgdata", &pg2]
    )
    .ends_with("90\n"));
    assert_eq!(
        ok(&f, &["get", "node", "candidate-priority", "--pgdata", &pg2]),
        "90\n"
    );
    let j = json(&ok(
        &f,
        &[
            "--json",
            "set",
            "node",
            "candidate-priority",
            "40",
            "--pgdata",
            &pg3,
        ],
    ));
    assert_eq!(j["candidate-priority"], 40);
    fails(
        &f,
        &[
            "set",
            "node",
            "replication-quorum",
            "wrong quorum",
            "--pgdata",
            &pg3,
        ],
        1,
        "not a boolean",
    );
    // The monitor refuses: number_sync_standbys 1 needs both standbys.
    fails(
        &f,
        &[
            "set",
            "node",
            "replication-quorum",
            "false",
            "--pgdata",
            &pg3,
        ],
        1,
        "can't set replication quorum to false",
    );
    assert!(ok(
        &f,
        &[
            "set",
            "node",
            "replication-quorum",
            "true",
            "--pgdata",
            &pg3
        ]
    )
    .ends_with("true\n"));

    // get|set formation number-sync-standbys.
    assert_eq!(
        ok(
            &f,
            &["get", "formation", "number-sync-standbys", "--pgdata", &pg1]
        ),
        "1\n"
    );
    fails(
        &f,
        &[
            "set",
            "formation",
            "number-sync-standbys",
            "-1",
            "--pgdata",
            &pg1,
        ],
        1,
        "negative",
    );
    fails(
        &f,
        &[
            "set",
            "formation",
            "number-sync-standbys",
            "--pgdata",
            &pg1,
            "--",
            "-1",
        ],
        1,
        "negative",
    );
    fails(
        &f,
        &[
            "set",
            "formation",
            "number-sync-standbys",
            "5",
            "--pgdata",
            &pg1,
        ],
        1,
        "standby nodes are required",
    );
    fails(
        &f,
        &[
            "get",
            "formation",
            "number-sync-standbys",
            "--monitor",
            &uri,
            "--formation",
            "nosuch",
        ],
        1,
        "does not exist",
    );
    assert!(ok(
        &f,
        &[
            "set",
            "formation",
            "number-sync-standbys",
            "0",
            "--pgdata",
            &pg1
        ]
    )
    .ends_with("0\n"));
    assert_eq!(
        json(&ok(
            &f,
            &[
                "--json",
                "get",
                "formation",
                "number-sync-standbys",
                "--pgdata",
                &pg1
            ]
        ))["number-sync-standbys"],
        0
    );
    let j = json(&ok(
        &f,
        &[
            "--json",
            "set",
            "formation",
            "number-sync-standbys",
            "1",
            "--pgdata",
            &pg1,
        ],
    ));
    assert_eq!(j["number-sync-standbys"], 1);
    let names = j["synchronous_standby_names"].as_str().unwrap();
    assert!(
        names.starts_with("ANY 1 (")
            && names.contains("pgautofailover_standby_2")
            && names.contains("pgautofailover_standby_3"),
        "{names}"
    );

    // Maintenance, and its refusals.
    fails(
        &f,
        &["enable", "maintenance", "--pgdata", &pg1],
        1,
        "--allow-failover",
    );
    let m = ok(&f, &["enable", "maintenance", "--pgdata", &pg3]);
    assert!(
        m.contains("Current State |      Assigned State") && m.contains("maintenance"),
        "{m}"
    );
    f.wait_states(&[("node3", "maintenance"), ("node1", "primary")], LIMIT)
        .await;
    fails(
        &f,
        &["enable", "maintenance", "--pgdata", &pg2],
        1,
        "would block writes",
    );
    f.wait_states(&[("node2", "secondary")], LIMIT).await;
    ok(&f, &["disable", "maintenance", "--pgdata", &pg3]);
    f.wait_states(
        &[
            ("node1", "primary"),
            ("node2", "secondary"),
            ("node3", "secondary"),
        ],
        LIMIT,
    )
    .await;

    // Maintenance of the primary: the monitor fails over to node2 (priority
    // 90, node3 has 40); node1 comes back as a standby.
    let m = ok(
        &f,
        &[
            "enable",
            "maintenance",
            "--allow-failover",
            "--pgdata",
            &pg1,
        ],
    );
    assert!(m.contains("prepare_maintenance"), "{m}");
    f.wait_states(&[("node1", "maintenance"), ("node2", "primary")], LIMIT)
        .await;
    tmux.wait_for("node2 as the primary", |s| {
        watch_row(s, "node2").is_some_and(|r| r.contains("primary"))
            && watch_row(s, "node1").is_some_and(|r| r.contains("maintenance"))
    });
    ok(&f, &["disable", "maintenance", "--pgdata", &pg1]);
    f.wait_states(
        &[
            ("node1", "secondary"),
            ("node2", "primary"),
            ("node3", "secondary"),
        ],
        LIMIT,
    )
    .await;

    // Promotion of node1, switchover back to node2 (the highest priority),
    // failover to node1 (50 against 40).
    let out = ok(
        &f,
        &["perform", "promotion", "--name", "node1", "--pgdata", &pg3],
    );
    assert!(out.contains("prepare_promotion"), "{out}");
    f.wait_states(
        &[
            ("node1", "primary"),
            ("node2", "secondary"),
            ("node3", "secondary"),
        ],
        LIMIT,
    )
    .await;
    let out = ok(&f, &["perform", "switchover", "--pgdata", &pg1]);
    assert!(
        out.contains("    Time |  Name |  Node |") && out.contains("draining"),
        "{out}"
    );
    f.wait_states(&[("node2", "primary")], LIMIT).await;
    tmux.wait_for("the switchover's events", |s| {
        watch_row(s, "node2").is_some_and(|r| r.contains("primary")) && s.contains("draining")
    });
    let again = f.autoctl(&["perform", "promotion", "--name", "node2", "--pgdata", &pg3]);
    assert!(
        again.status.success() && stderr(&again).contains("already the primary"),
        "{}",
        stderr(&again)
    );
    fails(
        &f,
        &["perform", "promotion", "--name", "nosuch", "--pgdata", &pg3],
        1,
        "is not registered",
    );
    fails(
        &f,
        &[
            "perform",
            "failover",
            "--monitor",
            &uri,
            "--formation",
            "nosuch",
        ],
        3,
        "has no node",
    );
    ok(&f, &["perform", "failover", "--monitor", &uri]);
    f.wait_states(
        &[
            ("node1", "primary"),
            ("node2", "secondary"),
            ("node3", "secondary"),
        ],
        LIMIT,
    )
    .await;

    // set node metadata.
    ok(
        &f,
        &[
            "set", "node", "metadata", "--name", "node3b", "--pgdata", &pg3,
        ],
    );
    assert!(ok(&f, &["show", "state", "--pgdata", &pg1]).contains("node3b |"));
    assert_eq!(
        ok(&f, &["config", "get", "pg_autoctl.name", "--pgdata", &pg3]),
        "node3b\n"
    );
    let mj = json(&ok(
        &f,
        &[
            "--json", "set", "node", "metadata", "--name", "node3", "--pgdata", &pg3,
        ],
    ));
    assert_eq!(mj["pg_autoctl"]["name"], "node3");
    let port3 = f.node("node3").port;
    let gm = json(&ok(
        &f,
        &[
            "--json",
            "get",
            "node",
            "metadata",
            "--monitor",
            &uri,
            "--name",
            "node3",
        ],
    ));
    assert_eq!(
        (gm["hostname"].as_str(), gm["pgport"].as_i64()),
        (Some("127.0.0.1"), Some(i64::from(port3)))
    );
    assert!(ok(&f, &["get", "node", "metadata", "--pgdata", &pg3]).contains("name:     node3\n"));

    let events = ok(&f, &["show", "events", "--count", "200", "--pgdata", &pg1]);
    for word in [
        "apply_settings",
        "maintenance",
        "prepare_promotion",
        "draining",
    ] {
        assert!(events.contains(word), "no {word} event:\n{events}");
    }
    drop(tmux);

    // stop, drop node (local --destroy, --force, remote), drop monitor.
    let pid3 = f.node("node3").pid().unwrap();
    let out = ok(&f, &["drop", "node", "--destroy", "--pgdata", &pg3]);
    assert!(out.is_empty(), "{out}");
    wait_gone("node3's pg_autoctl", pid3);
    assert!(!Path::new(&pg3).exists(), "PGDATA of node3 is still there");
    assert!(!f.states().await.iter().any(|n| n.name == "node3"));
    let pid2 = f.node("node2").pid().unwrap();
    ok(&f, &["stop", "--immediate", "--pgdata", &pg2]);
    wait_gone("node2's pg_autoctl", pid2);
    fails(
        &f,
        &["status", "--pgdata", &pg2],
        3,
        "pg_autoctl is not running",
    );
    fails(&f, &["stop", "--pgdata", &pg2], 12, "not running");
    // A wait that cannot end (the removal needs node2's keeper): the command
    // gives up at --wait with exit 12, as perform does.
    fails(
        &f,
        &[
            "drop",
            "node",
            "--monitor",
            &uri,
            "--name",
            "node2",
            "--wait",
            "1",
        ],
        12,
        "did not happen within 1 s",
    );
    ok(&f, &["drop", "node", "--force", "--pgdata", &pg2]);
    assert!(!f.states().await.iter().any(|n| n.name == "node2"));
    let sj = json(&ok(
        &f,
        &[
            "--json",
            "show",
            "file",
            "--state",
            "--contents",
            "--pgdata",
            &pg2,
        ],
    ));
    assert_eq!(sj["current_role"], "dropped");
    assert!(
        Path::new(&pg2).join("PG_VERSION").exists(),
        "--force without --destroy removed PGDATA"
    );
    let pid1 = f.node("node1").pid().unwrap();
    ok(&f, &["drop", "node", "--monitor", &uri, "--name", "node1"]);
    wait_gone("node1's pg_autoctl", pid1);
    assert!(f.states().await.is_empty());
    let pidm = f.monitor.pid().unwrap();
    ok(&f, &["drop", "monitor", "--destroy", "--pgdata", &mon]);
    wait_gone("the monitor's pg_autoctl", pidm);
    assert!(
        !Path::new(&mon).exists(),
        "the monitor's PGDATA is still there"
    );
}
