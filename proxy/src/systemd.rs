//! systemd integration: the unit file `pg_autoproxy --print-systemd-unit`
//! prints, and `sd_notify` messages (`READY=1`, `RELOADING=1`,
//! `STOPPING=1`) sent to `$NOTIFY_SOCKET` when systemd provides one.

use std::path::Path;

/// A unit for this binary and configuration file.
pub(crate) fn unit(binary: &Path, config: &Path, drain_timeout_secs: u64) -> String {
    let stop_timeout = drain_timeout_secs + 15;
    format!(
        "\
# pg_autoproxy: routes client connections to the pg_auto_failover primary.
# Install: pg_autoproxy --config {config} --print-systemd-unit \\
#            > /etc/systemd/system/pg_autoproxy.service
#          systemctl daemon-reload && systemctl enable --now pg_autoproxy
[Unit]
Description=pg_autoproxy (failover-aware Postgres proxy for pg_auto_failover)
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStartPre={binary} --config {config} --check
ExecStart={binary} --config {config}
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
# The proxy drains sessions for proxy.drain_timeout ({drain_timeout_secs} s) before it exits.
TimeoutStopSec={stop_timeout}
Restart=on-failure
RestartSec=1
LimitNOFILE=1048576
DynamicUser=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
# Ports below 1024 need: AmbientCapabilities=CAP_NET_BIND_SERVICE

[Install]
WantedBy=multi-user.target
",
        binary = binary.display(),
        config = config.display(),
    )
}

/// Send a state to systemd if it asked for notifications. Errors are
/// logged and otherwise ignored: the proxy works without systemd.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = (|| -> std::io::Result<()> {
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            socket.send_to(state.as_bytes(), &path)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!("failed to notify systemd: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_binary_and_config() {
        let u = unit(
            Path::new("/usr/bin/pg_autoproxy"),
            Path::new("/etc/pg_autoproxy.toml"),
            30,
        );
        assert!(u.contains("ExecStart=/usr/bin/pg_autoproxy --config /etc/pg_autoproxy.toml\n"));
        assert!(u.contains("ExecReload=/bin/kill -HUP $MAINPID"));
        assert!(u.contains("TimeoutStopSec=45"));
        assert!(u.contains("Type=notify"));
    }

    #[test]
    fn notify_reaches_the_socket() {
        let dir = std::env::temp_dir().join(format!("pgaf-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 32];
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
