//! `pg_autoctl do show ...`: this host's addresses and names, as the
//! keeper sees them when it chooses `--hostname` ([`crate::net`]).

use crate::cli::exit::{self, CmdResult, Failure};
use crate::cli::Globals;
use crate::net;
use std::net::IpAddr;

#[derive(Debug, clap::Subcommand)]
pub enum ShowCmd {
    /// Print this node's IP address information
    Ipaddr,
    /// Print this node's CIDR information
    Cidr,
    /// Print this node's DNS lookup information
    Lookup {
        /// A host name or an IP address
        hostname: String,
    },
    /// Print this node's default hostname
    Hostname {
        /// A monitor URI: the address used to reach it
        #[arg(value_name = "postgres://monitor/uri")]
        uri: Option<String>,
    },
    /// Lookup given hostname and check reverse DNS setup
    Reverse {
        /// The host name to check
        hostname: String,
    },
}

fn failed(msg: String) -> Failure {
    Failure::new(exit::INTERNAL_ERROR, anyhow::anyhow!("{msg}"))
}

fn this_address() -> Result<IpAddr, Failure> {
    net::default_address()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| failed("Failed to determine network configuration.".into()))
}

/// The first address of `name` that belongs to this host.
fn local_address_of(name: &str) -> Option<IpAddr> {
    net::resolve(name).into_iter().find(|ip| net::is_local(*ip))
}

impl ShowCmd {
    pub fn run(self, _g: Globals) -> CmdResult {
        match self {
            ShowCmd::Ipaddr => {
                println!("{}", this_address()?);
                Ok(())
            }
            ShowCmd::Cidr => {
                let ip = this_address()?;
                let cidr = net::local_network(ip).ok_or_else(|| {
                    failed(format!(
                        "Failed to determine network configuration for IP address \"{ip}\""
                    ))
                })?;
                println!("{cidr}");
                Ok(())
            }
            ShowCmd::Lookup { hostname } => lookup(&hostname),
            ShowCmd::Hostname { uri } => hostname(uri.as_deref()),
            ShowCmd::Reverse { hostname } => reverse(&hostname),
        }
    }
}

fn lookup(name: &str) -> CmdResult {
    if let Ok(ip) = name.parse::<IpAddr>() {
        let Some(host) = net::reverse(ip) else {
            println!("{ip}");
            return Err(failed(format!("Failed to resolve \"{ip}\" to a host name")));
        };
        return match local_address_of(&host) {
            Some(local) => {
                println!("{local}: {host}");
                Ok(())
            }
            None => {
                println!("{ip}");
                Err(failed(format!(
                    "Failed to check hostname \"{host}\": it does not resolve to an address of this host"
                )))
            }
        };
    }
    match local_address_of(name) {
        Some(ip) => {
            println!("{name}: {ip}");
            Ok(())
        }
        None => Err(failed(format!(
            "Failed to check hostname \"{name}\": it does not resolve to an address of this host"
        ))),
    }
}

fn hostname(uri: Option<&str>) -> CmdResult {
    let ip = match uri {
        None => {
            if let Some(name) = net::host_name() {
                if local_address_of(&name).is_some() {
                    println!("{name}");
                    return Ok(());
                }
            }
            this_address()?
        }
        Some(uri) => {
            let target = pgaf_pgconn::parse(uri).map_err(|e| {
                Failure::usage(format!("Failed to parse \"{uri}\" as a monitor URI: {e}"))
            })?;
            let host = match target.config.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                _ => return Err(Failure::usage(format!("\"{uri}\" names no TCP host"))),
            };
            let port = target.config.get_ports().first().copied().unwrap_or(5432);
            tracing::info!("Using monitor hostname \"{host}\" and port {port}");
            net::routed_address(&host, port).ok_or_else(|| {
                failed(format!(
                    "Failed to find a route to the monitor at {host}:{port}"
                ))
            })?
        }
    };
    match net::reverse(ip).filter(|name| local_address_of(name).is_some()) {
        Some(name) => {
            println!("{name}");
            Ok(())
        }
        None => {
            println!("{ip}");
            if uri.is_some() {
                Err(failed(format!(
                    "Failed to find a host name for {ip} that resolves back to this host"
                )))
            } else {
                Ok(())
            }
        }
    }
}

fn reverse(name: &str) -> CmdResult {
    if name.parse::<IpAddr>().is_ok() {
        return Err(Failure::usage("Hostname must not be an IP address"));
    }
    let ips = net::resolve(name);
    for ip in &ips {
        if net::reverse(*ip).as_deref() == Some(name) {
            tracing::info!("Hostname \"{name}\" resolves to IP address {ip} and back");
            return Ok(());
        }
    }
    Err(failed(match ips.first() {
        Some(ip) => format!(
            "Failed to find an IP address for hostname \"{name}\" that matches hostname again \
             in a reverse-DNS lookup; the first address is {ip}"
        ),
        None => format!("Failed to resolve hostname \"{name}\""),
    }))
}
