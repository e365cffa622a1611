//! The systemd unit `pg_autoproxy --print-systemd-unit` prints, run the way
//! systemd runs it (no systemd as PID 1 is needed): `systemd-analyze
//! verify` accepts it; its `ExecStartPre` (`--check`) passes; its
//! `ExecStart` with `NOTIFY_SOCKET` set sends `READY=1` (`Type=notify`);
//! its `ExecReload` (SIGHUP to `$MAINPID`) yields `RELOADING=1` then
//! `READY=1`; its `KillSignal` (SIGTERM) yields `STOPPING=1` and a clean
//! exit well within `TimeoutStopSec`.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::cluster::free_port;
use pgaf_tests::proxy::binary;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The value of `key=` in the unit's text.
fn directive<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit:\n{unit}"))
}

/// Run a unit command line (no quoting is needed for our paths).
fn run(line: &str) -> Command {
    let mut words = line.split_whitespace();
    let mut c = Command::new(words.next().unwrap());
    c.args(words);
    c
}

/// The next notification, within 10 s.
fn next_message(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket
        .recv(&mut buf)
        .expect("no notification from pg_autoproxy within 10 s");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

#[test]
fn the_systemd_unit_starts_reloads_and_stops_the_proxy() {
    let dir = std::env::temp_dir().join(format!("pgaf-systemd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // No monitor is needed to start, reload and stop: the follower keeps
    // retrying in the background.
    let config = dir.join("pg_autoproxy.toml");
    std::fs::write(
        &config,
        format!(
            "[monitor]\nuri = \"postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover\"\n\
             [proxy]\ndrain_timeout = \"2s\"\n\
             [[listener]]\nname = \"app\"\nlisten = \"127.0.0.1:{}\"\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();

    let out = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .arg("--print-systemd-unit")
        .output()
        .unwrap();
    assert!(out.status.success());
    let unit = String::from_utf8(out.stdout).unwrap();
    assert_eq!(directive(&unit, "Type"), "notify");
    assert_eq!(directive(&unit, "KillSignal"), "SIGTERM");
    // drain_timeout + 15 s.
    assert_eq!(directive(&unit, "TimeoutStopSec"), "17");
    let unit_file = dir.join("pg_autoproxy.service");
    std::fs::write(&unit_file, &unit).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_file)
        .output()
        .expect("systemd-analyze not found: install the systemd package (scripts/setup.sh)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // ExecStartPre.
    let pre = run(directive(&unit, "ExecStartPre")).output().unwrap();
    assert!(
        pre.status.success(),
        "ExecStartPre failed: {}",
        String::from_utf8_lossy(&pre.stderr)
    );

    // ExecStart, with the notification socket systemd would pass.
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let log = std::fs::File::create(dir.join("pg_autoproxy.log")).unwrap();
    let mut child = run(directive(&unit, "ExecStart"))
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stop = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
    };
    let ready = next_message(&socket);
    if ready != "READY=1" {
        stop(&mut child);
        panic!("first notification: {ready}");
    }

    // ExecReload.
    let reload = directive(&unit, "ExecReload").replace("$MAINPID", &pid);
    assert!(run(&reload).status().unwrap().success());
    assert_eq!(next_message(&socket), "RELOADING=1");
    assert_eq!(next_message(&socket), "READY=1");

    // KillSignal.
    // SAFETY: signalling the process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(next_message(&socket), "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(17);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            stop(&mut child);
            panic!("pg_autoproxy did not exit within TimeoutStopSec after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
