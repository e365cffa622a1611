//! Hosts on a virtual LAN, so that what crosses a network in production
//! crosses one in the tests, and a test can break it.
//!
//! * [`Lan::new`] takes the first free bridge `pgafbrN` in the root network
//!   namespace (the kernel refuses a second bridge of the same name, so
//!   concurrent tests never share one; a bridge left behind by a test
//!   process that died is reclaimed) with subnet `10.231.N.0/24`. The bridge
//!   itself is `10.231.N.1`: the test process lives there and plays the
//!   clients' host.
//! * [`Lan::add_host`] makes network namespace `pgafN-<name>` joined to the
//!   bridge by a veth pair (`eth0` inside), address `10.231.N.(10+K)`,
//!   loopback up, default route through the bridge, and a freezer cgroup.
//! * [`Host::command`] runs a program inside the host (its network
//!   namespace and freezer cgroup), so every process it starts belongs to
//!   it.
//! * Faults, as nftables rules inside the hosts' namespaces, rewritten as a
//!   whole on every change: [`Lan::block`] drops the packets from one host
//!   to another (call it both ways for a partition), [`Lan::isolate`] cuts a
//!   host off from everything, [`Lan::loss`] drops a share of a host's
//!   packets at random; [`Lan::heal`] removes every rule. [`Host::freeze`]
//!   stops every process of a host at once (the cgroup freezer): a paused
//!   VM.
//!
//! Dropping the LAN thaws its hosts, deletes the namespaces (which deletes
//! their veths and rules), the bridge and the cgroups. Processes a test
//! started in a host must be stopped before (they are not killed here).
//!
//! Needs root, `ip` (iproute2), `nft` (nftables) and the cgroup v1 freezer
//! (`/sys/fs/cgroup/freezer`); [`Lan::new`] says which one is missing.

use std::ffi::CString;
use std::fmt;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

const FREEZER: &str = "/sys/fs/cgroup/freezer";
/// Bridges `pgafbr0` … `pgafbr199`.
const MAX_LANS: u32 = 200;

/// Why a LAN could not be built or changed.
#[derive(Debug)]
pub struct NetError(String);

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NetError {}

type Result<T> = std::result::Result<T, NetError>;

/// Run a command to completion; its stderr becomes the error.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut c = Command::new(program);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| {
        NetError(format!(
            "cannot run {program}: {e} (install iproute2 and nftables)"
        ))
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| NetError(format!("{program}: writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError(format!("{program}: {e}")))?;
    if !out.status.success() {
        return Err(NetError(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String> {
    run("ip", args, None)
}

/// Whether process `pid` exists.
fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Where packets are dropped. `None` stands for every other address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    from: Option<Ipv4Addr>,
    to: Option<Ipv4Addr>,
    /// Percentage of the matching packets dropped (100: all).
    percent: u8,
}

/// One host: a network namespace with one address on the LAN.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// The network namespace (`ip netns exec <ns>`).
    pub ns: String,
    pub addr: Ipv4Addr,
    cgroup: PathBuf,
}

impl Host {
    /// `program` run inside this host (its network namespace and freezer
    /// cgroup). The environment and working directory are the caller's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        self.enter(&mut c, None);
        c
    }

    /// Make `cmd` start inside this host, then, when `ids` is given, as
    /// that uid and gid (use this instead of `Command::uid`, which would
    /// drop root before the namespace is entered). Panics when the
    /// namespace is gone (a test bug).
    pub fn enter(&self, cmd: &mut Command, ids: Option<(u32, u32)>) {
        let netns = std::fs::File::open(Path::new("/run/netns").join(&self.ns))
            .unwrap_or_else(|e| panic!("network namespace {}: {e}", self.ns));
        let procs = CString::new(
            self.cgroup
                .join("cgroup.procs")
                .as_os_str()
                .as_encoded_bytes(),
        )
        .ok();
        // SAFETY: the closure runs in the forked child and only calls
        // async-signal-safe functions (open, write, close, setns,
        // setgroups, setgid, setuid) on values prepared before the fork.
        // Writing "0" to cgroup.procs moves the calling process.
        unsafe {
            cmd.pre_exec(move || {
                use std::os::fd::AsRawFd;
                if let Some(p) = &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                    if fd >= 0 {
                        libc::write(fd, b"0".as_ptr().cast(), 1);
                        libc::close(fd);
                    }
                }
                if libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some((uid, gid)) = ids {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    /// Stop every process of the host at once (they stay in memory, their
    /// sockets open, as in a paused VM).
    pub fn freeze(&self) -> Result<()> {
        self.freezer_state("FROZEN")
    }

    /// Let the host's processes run again.
    pub fn thaw(&self) -> Result<()> {
        self.freezer_state("THAWED")
    }

    fn freezer_state(&self, state: &str) -> Result<()> {
        std::fs::write(self.cgroup.join("freezer.state"), state).map_err(|e| {
            NetError(format!(
                "cannot set {} to {state}: {e}",
                self.cgroup.display()
            ))
        })
    }

    /// The processes of this host, by PID.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.cgroup.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

#[derive(Debug)]
struct State {
    hosts: Vec<Host>,
    rules: Vec<Rule>,
}

/// A bridge and the hosts joined to it. Cheap to clone: clones share it.
#[derive(Debug, Clone)]
pub struct Lan {
    index: u32,
    bridge: String,
    state: Arc<Mutex<State>>,
    _owner: Arc<Owner>,
}

/// Deletes everything when the last clone of the LAN goes.
#[derive(Debug)]
struct Owner {
    index: u32,
    bridge: String,
    state: Arc<Mutex<State>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let hosts = self
            .state
            .lock()
            .map(|s| s.hosts.clone())
            .unwrap_or_default();
        for h in &hosts {
            let _ = h.thaw();
            // Whatever a test left running in the host goes with it.
            for pid in h.pids() {
                // SAFETY: signalling a process of this LAN's own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        cleanup(self.index, &self.bridge);
    }
}

/// Delete whatever LAN `index` left: its hosts, then its bridge.
fn cleanup(index: u32, bridge: &str) {
    cleanup_hosts(index);
    let _ = ip(&["link", "del", bridge]);
}

/// Delete the hosts of LAN `index`: veths, namespaces, and freezer cgroups
/// (killing what still runs in them). The veths are deleted first and by
/// name: a deleted namespace takes its end of the pair with it only when
/// the kernel gets round to it, and the next LAN of that index reuses the
/// names.
fn cleanup_hosts(index: u32) {
    let prefix = format!("pgaf{index}-");
    let veth = format!("pgaf{index}h");
    if let Ok(list) = ip(&["-o", "link", "show"]) {
        for name in list
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
        {
            if name.starts_with(&veth) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
    if let Ok(list) = ip(&["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if ns.starts_with(&prefix) {
                let _ = ip(&["netns", "del", ns]);
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(FREEZER) {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::write(e.path().join("freezer.state"), "THAWED");
                // Processes cannot linger in a cgroup that goes away.
                let procs = std::fs::read_to_string(e.path().join("cgroup.procs"));
                for pid in procs.unwrap_or_default().lines() {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        // SAFETY: signalling a leftover of this LAN's cgroup.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                // The killed processes leave the cgroup shortly.
                for _ in 0..50 {
                    if std::fs::remove_dir(e.path()).is_ok() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }
}

impl Lan {
    /// A new LAN with no host yet.
    pub fn new() -> Result<Lan> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(NetError(
                "network namespaces need root: run the fault tests as root".into(),
            ));
        }
        if !Path::new(FREEZER).join("cgroup.procs").exists() {
            return Err(NetError(format!(
                "{FREEZER} is not mounted: the fault tests need the cgroup v1 freezer"
            )));
        }
        run("nft", &["--version"], None)?;
        for index in 0..MAX_LANS {
            let bridge = format!("pgafbr{index}");
            if ip(&["link", "add", &bridge, "type", "bridge"]).is_err() {
                // Taken: reclaim it if the process that made it is gone.
                let alias = ip(&["-o", "link", "show", &bridge]).unwrap_or_default();
                let owner = alias
                    .split("alias ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .and_then(|s| s.strip_prefix("pid"))
                    .and_then(|s| s.parse::<i32>().ok());
                if owner.is_some_and(|pid| !pid_alive(pid)) {
                    cleanup(index, &bridge);
                    if ip(&["link", "add", &bridge, "type", "bridge"]).is_err() {
                        continue;
                    }
                } else {
                    continue;
                }
            }
            let lan = Lan::set_up(index, bridge);
            return lan;
        }
        Err(NetError(format!(
            "no free bridge name among pgafbr0..pgafbr{}",
            MAX_LANS - 1
        )))
    }

    fn set_up(index: u32, bridge: String) -> Result<Lan> {
        // Leftovers of an earlier LAN of this index (the bridge is ours).
        cleanup_hosts(index);
        let state = Arc::new(Mutex::new(State {
            hosts: Vec::new(),
            rules: Vec::new(),
        }));
        // From here on, a failure deletes what was made.
        let owner = Arc::new(Owner {
            index,
            bridge: bridge.clone(),
            state: state.clone(),
        });
        let lan = Lan {
            index,
            bridge: bridge.clone(),
            state,
            _owner: owner,
        };
        let pid = format!("pid{}", std::process::id());
        ip(&["link", "set", "dev", &bridge, "alias", &pid])?;
        let gw = format!("{}/24", lan.gateway());
        ip(&["addr", "add", &gw, "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        Ok(lan)
    }

    /// The address of the test process on this LAN (the bridge): where
    /// clients connect from.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.index as u8, 1)
    }

    /// The subnet, as a CIDR (for HBA rules).
    pub fn cidr(&self) -> String {
        format!("10.231.{}.0/24", self.index)
    }

    /// A new host named `name` (letters, digits and `-`; at most 8
    /// characters, as it is part of interface and namespace names).
    pub fn add_host(&self, name: &str) -> Result<Host> {
        if name.is_empty()
            || name.len() > 8
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(NetError(format!(
                "host name {name:?}: 1 to 8 letters, digits or '-'"
            )));
        }
        let mut st = self
            .state
            .lock()
            .map_err(|_| NetError("LAN state poisoned".into()))?;
        if st.hosts.iter().any(|h| h.name == name) {
            return Err(NetError(format!("host {name} exists already")));
        }
        let k = st.hosts.len() as u32;
        if k >= 200 {
            return Err(NetError("at most 200 hosts on one LAN".into()));
        }
        let ns = format!("pgaf{}-{name}", self.index);
        let veth = format!("pgaf{}h{k}", self.index);
        let peer = format!("pgaf{}p{k}", self.index);
        let addr = Ipv4Addr::new(10, 231, self.index as u8, 10 + k as u8);
        let cgroup = Path::new(FREEZER).join(&ns);
        let host = Host {
            name: name.to_string(),
            ns: ns.clone(),
            addr,
            cgroup: cgroup.clone(),
        };
        // Registered first so that a failure below is cleaned up too.
        st.hosts.push(host.clone());
        drop(st);
        ip(&["netns", "add", &ns])?;
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", &peer, "netns", &ns,
        ])?;
        ip(&["link", "set", &veth, "master", &self.bridge])?;
        ip(&["link", "set", &veth, "up"])?;
        let inside = |args: &[&str]| -> Result<String> {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["link", "set", &peer, "name", "eth0"])?;
        inside(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        inside(&["link", "set", "eth0", "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        inside(&[
            "route",
            "add",
            "default",
            "via",
            &self.gateway().to_string(),
        ])?;
        std::fs::create_dir_all(&cgroup)
            .map_err(|e| NetError(format!("cannot create {}: {e}", cgroup.display())))?;
        self.apply_host(&host, &[])?;
        Ok(host)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<Host> {
        self.state
            .lock()
            .ok()?
            .hosts
            .iter()
            .find(|h| h.name == name)
            .cloned()
    }

    /// Every host, in the order they were added.
    pub fn hosts(&self) -> Vec<Host> {
        self.state
            .lock()
            .map(|s| s.hosts.clone())
            .unwrap_or_default()
    }

    /// Drop every packet from `from` to `to` (addresses of hosts of this
    /// LAN, or [`gateway`](Self::gateway) for the clients). One way only:
    /// call it both ways for a partition.
    pub fn block(&self, from: Ipv4Addr, to: Ipv4Addr) -> Result<()> {
        self.add_rule(Rule {
            from: Some(from),
            to: Some(to),
            percent: 100,
        })
    }

    /// Cut `host` off from every other host and from the clients.
    pub fn isolate(&self, host: Ipv4Addr) -> Result<()> {
        self.add_rule(Rule {
            from: Some(host),
            to: None,
            percent: 100,
        })?;
        self.add_rule(Rule {
            from: None,
            to: Some(host),
            percent: 100,
        })
    }

    /// Drop `percent` % of the packets `host` sends and receives, at random.
    pub fn loss(&self, host: Ipv4Addr, percent: u8) -> Result<()> {
        let percent = percent.min(100);
        self.add_rule(Rule {
            from: Some(host),
            to: None,
            percent,
        })?;
        self.add_rule(Rule {
            from: None,
            to: Some(host),
            percent,
        })
    }

    /// `ip link set eth0 down` inside `host`: its interface goes away, as
    /// when a cable is pulled (the peers see nothing; the host's own
    /// sockets to the LAN get "network unreachable").
    pub fn link_down(&self, host: &Host) -> Result<()> {
        ip(&["-n", &host.ns, "link", "set", "eth0", "down"]).map(|_| ())
    }

    /// The interface back up, with its default route (which went with it).
    pub fn link_up(&self, host: &Host) -> Result<()> {
        ip(&["-n", &host.ns, "link", "set", "eth0", "up"])?;
        let gw = self.gateway().to_string();
        ip(&["-n", &host.ns, "route", "replace", "default", "via", &gw]).map(|_| ())
    }

    /// Remove every rule: the network works again.
    pub fn heal(&self) -> Result<()> {
        let hosts = {
            let mut st = self
                .state
                .lock()
                .map_err(|_| NetError("LAN state poisoned".into()))?;
            st.rules.clear();
            st.hosts.clone()
        };
        for h in &hosts {
            self.apply_host(h, &[])?;
        }
        Ok(())
    }

    fn add_rule(&self, rule: Rule) -> Result<()> {
        let (hosts, rules) = {
            let mut st = self
                .state
                .lock()
                .map_err(|_| NetError("LAN state poisoned".into()))?;
            if !st.rules.contains(&rule) {
                st.rules.push(rule);
            }
            (st.hosts.clone(), st.rules.clone())
        };
        for h in &hosts {
            self.apply_host(h, &rules)?;
        }
        Ok(())
    }

    /// Rewrite host `h`'s table from `rules` in one nft transaction.
    fn apply_host(&self, h: &Host, rules: &[Rule]) -> Result<()> {
        let addrs: Vec<Ipv4Addr> = self.hosts().iter().map(|h| h.addr).collect();
        let text = render_rules(h.addr, &addrs, rules);
        run(
            "ip",
            &["netns", "exec", &h.ns, "nft", "-f", "-"],
            Some(&text),
        )
        .map(|_| ())
    }
}

/// The nftables script of the host at `me`: a rule from `me` goes to its
/// output chain, a rule to `me` to its input chain (so that a rule from
/// the clients, which live outside every namespace, is enforced by the
/// host receiving it).
fn render_rules(me: Ipv4Addr, hosts: &[Ipv4Addr], rules: &[Rule]) -> String {
    let mut input = Vec::new();
    let mut output = Vec::new();
    for r in rules {
        let chance = if r.percent >= 100 {
            String::new()
        } else {
            format!("numgen random mod 100 < {} ", r.percent)
        };
        if r.from == Some(me) {
            let dst = r.to.map_or("oifname \"eth0\" ".to_string(), |a| {
                format!("ip daddr {a} ")
            });
            output.push(format!("    {dst}{chance}drop"));
        } else if r.to == Some(me) && r.from.is_none_or(|a| !hosts.contains(&a)) {
            // A rule between two hosts is enforced on the sender's side
            // only; one from the clients (not a host) by the receiver.
            let src = r.from.map_or("iifname \"eth0\" ".to_string(), |a| {
                format!("ip saddr {a} ")
            });
            input.push(format!("    {src}{chance}drop"));
        }
    }
    // The LAN has no name server, and the machine's is out of its reach:
    // a name lookup fails at once instead of timing out. (Upstream's HBA
    // has a `localhost` line, so its Postgres looks up the name of every
    // client not matched before it, longer than libpq's connect_timeout.)
    output.push("    meta l4proto { tcp, udp } th dport 53 reject".into());
    format!(
        "add table inet pgaf\ndelete table inet pgaf\ntable inet pgaf {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{}\n  }}\n  chain output {{\n    type filter hook output priority 0; policy accept;\n{}\n  }}\n}}\n",
        input.join("\n"),
        output.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_land_on_the_right_side() {
        let a = Ipv4Addr::new(10, 231, 0, 10);
        let b = Ipv4Addr::new(10, 231, 0, 11);
        let rules = [Rule {
            from: Some(a),
            to: Some(b),
            percent: 100,
        }];
        let on_a = render_rules(a, &[a, b], &rules);
        assert!(on_a.contains("ip daddr 10.231.0.11 drop"), "{on_a}");
        let on_b = render_rules(b, &[a, b], &rules);
        assert!(!on_b.contains("drop"), "{on_b}");
        // From the clients (not a host): dropped by the receiver.
        let gw = Ipv4Addr::new(10, 231, 0, 1);
        let rules = [Rule {
            from: Some(gw),
            to: Some(b),
            percent: 30,
        }];
        let on_b = render_rules(b, &[a, b], &rules);
        assert!(
            on_b.contains("ip saddr 10.231.0.1 numgen random mod 100 < 30 drop"),
            "{on_b}"
        );
        // Isolation: everything in and out of eth0.
        let rules = [
            Rule {
                from: Some(a),
                to: None,
                percent: 100,
            },
            Rule {
                from: None,
                to: Some(a),
                percent: 100,
            },
        ];
        let on_a = render_rules(a, &[a, b], &rules);
        assert!(
            on_a.contains("oifname \"eth0\" drop") && on_a.contains("iifname \"eth0\" drop"),
            "{on_a}"
        );
    }
}
