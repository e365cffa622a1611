//! The SSL option family shared by `create monitor` and `create postgres`: one explicit choice among `--no-ssl`,
//! `--ssl-self-signed` and user-provided files, and the `sslmode` that goes
//! into connection strings.

use super::exit::Failure;
use crate::config::Ssl;
use crate::pg::cert::self_signed_paths;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SslArgs {
    /// Set up network encryption with self-signed certificates (does NOT protect against MITM)
    #[arg(long)]
    pub ssl_self_signed: bool,
    /// Do not enable network encryption (NOT recommended, prefer --ssl-self-signed)
    #[arg(long)]
    pub no_ssl: bool,
    /// Use that sslmode in connection strings
    #[arg(long, value_name = "MODE")]
    pub ssl_mode: Option<String>,
    /// Set the Postgres ssl_ca_file to that file path
    #[arg(long, value_name = "FILE")]
    pub ssl_ca_file: Option<PathBuf>,
    /// Set the Postgres ssl_crl_file to that file path
    #[arg(long, value_name = "FILE")]
    pub ssl_crl_file: Option<PathBuf>,
    /// Set the Postgres ssl_cert_file to that file path
    #[arg(long, value_name = "FILE")]
    pub server_cert: Option<PathBuf>,
    /// Set the Postgres ssl_key_file to that file path
    #[arg(long, value_name = "FILE")]
    pub server_key: Option<PathBuf>,
}

const MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

fn rank(mode: &str) -> usize {
    MODES.iter().position(|m| *m == mode).unwrap_or(0)
}

fn absolute(p: &Path) -> String {
    crate::paths::absolute(p).display().to_string()
}

impl SslArgs {
    /// The SSL settings these options ask for, for a node in `pgdata`.
    pub fn resolve(&self, pgdata: &Path) -> Result<Ssl, Failure> {
        let files = self.ssl_ca_file.is_some()
            || self.ssl_crl_file.is_some()
            || self.server_cert.is_some()
            || self.server_key.is_some();
        let choices =
            usize::from(self.no_ssl) + usize::from(self.ssl_self_signed) + usize::from(files);
        if choices == 0 {
            return Err(Failure::usage(
                "Explicit SSL choice is required: use --ssl-self-signed, --no-ssl, \
                 or --ssl-ca-file with --server-cert and --server-key",
            ));
        }
        if choices > 1 {
            return Err(Failure::usage(
                "--no-ssl, --ssl-self-signed and user-provided SSL files exclude each other: choose one",
            ));
        }
        if let Some(m) = &self.ssl_mode {
            if !MODES.contains(&m.as_str()) {
                return Err(Failure::usage(format!(
                    "--ssl-mode \"{m}\" is not one of {}",
                    MODES.join(", ")
                )));
            }
        }
        let mode = |default: &str| self.ssl_mode.clone().unwrap_or_else(|| default.to_string());
        if self.no_ssl {
            return Ok(Ssl {
                active: false,
                sslmode: mode("prefer"),
                ..Ssl::default()
            });
        }
        if self.ssl_self_signed {
            let sslmode = mode("require");
            if rank(&sslmode) > rank("require") {
                return Err(Failure::usage(format!(
                    "--ssl-mode {sslmode} needs a certificate authority: self-signed certificates allow at most require"
                )));
            }
            let (cert, key) = self_signed_paths(&crate::paths::absolute(pgdata));
            return Ok(Ssl {
                active: true,
                sslmode,
                cert_file: cert.display().to_string(),
                key_file: key.display().to_string(),
                ..Ssl::default()
            });
        }
        let (Some(cert), Some(key)) = (&self.server_cert, &self.server_key) else {
            return Err(Failure::usage(
                "--server-cert and --server-key go together: give both",
            ));
        };
        for (opt, f) in [
            ("--server-cert", Some(cert)),
            ("--server-key", Some(key)),
            ("--ssl-ca-file", self.ssl_ca_file.as_ref()),
            ("--ssl-crl-file", self.ssl_crl_file.as_ref()),
        ] {
            if let Some(f) = f {
                if !f.exists() {
                    return Err(Failure::usage(format!(
                        "{opt} {}: no such file",
                        f.display()
                    )));
                }
            }
        }
        let sslmode = mode("verify-full");
        if rank(&sslmode) >= rank("verify-ca") && self.ssl_ca_file.is_none() {
            return Err(Failure::usage(format!(
                "--ssl-mode {sslmode} needs --ssl-ca-file"
            )));
        }
        Ok(Ssl {
            active: true,
            sslmode,
            ca_file: self
                .ssl_ca_file
                .as_deref()
                .map(absolute)
                .unwrap_or_default(),
            crl_file: self
                .ssl_crl_file
                .as_deref()
                .map(absolute)
                .unwrap_or_default(),
            cert_file: absolute(cert),
            key_file: absolute(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_explicit_choice() {
        let p = Path::new("/data/n1");
        assert!(SslArgs::default().resolve(p).is_err());
        let both = SslArgs {
            no_ssl: true,
            ssl_self_signed: true,
            ..SslArgs::default()
        };
        assert!(both.resolve(p).is_err());
        let none = SslArgs {
            no_ssl: true,
            ..SslArgs::default()
        }
        .resolve(p)
        .unwrap();
        assert_eq!((none.active, none.sslmode.as_str()), (false, "prefer"));
        let ss = SslArgs {
            ssl_self_signed: true,
            ..SslArgs::default()
        }
        .resolve(p)
        .unwrap();
        assert_eq!(
            (ss.active, ss.sslmode.as_str(), ss.cert_file.as_str()),
            (true, "require", "/data/n1/server.crt")
        );
        let strict = SslArgs {
            ssl_self_signed: true,
            ssl_mode: Some("verify-full".into()),
            ..SslArgs::default()
        };
        assert!(strict.resolve(p).is_err());
        let bogus = SslArgs {
            no_ssl: true,
            ssl_mode: Some("always".into()),
            ..SslArgs::default()
        };
        assert!(bogus.resolve(p).is_err());
        let half = SslArgs {
            server_cert: Some("/etc/hostname".into()),
            ..SslArgs::default()
        };
        assert!(half.resolve(p).is_err());
    }
}
