//! Self-signed server certificates (`--ssl-self-signed`): `server.key` and
//! `server.crt` in PGDATA, made with `openssl` the way upstream makes them.
//! Encryption without authentication of the server: clients use
//! `sslmode=require`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot run openssl to make a self-signed certificate: {0}; install it (apt-get install openssl)")]
    Spawn(std::io::Error),
    #[error("openssl failed to make a self-signed certificate: {0}")]
    Failed(String),
    #[error("cannot create the private key file {path} (mode 0600): {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The paths `--ssl-self-signed` configures.
pub fn self_signed_paths(pgdata: &Path) -> (PathBuf, PathBuf) {
    (pgdata.join("server.crt"), pgdata.join("server.key"))
}

/// The `subjectAltName` extension naming `hostname`, an address or a DNS
/// name.
fn subject_alt_name(hostname: &str) -> String {
    let bare = hostname.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => format!("subjectAltName=IP:{ip}"),
        Err(_) => format!("subjectAltName=DNS:{hostname}"),
    }
}

/// Make `cert` and `key` for `hostname` unless both exist. Returns whether
/// new files were made.
pub fn ensure_self_signed(cert: &Path, key: &Path, hostname: &str) -> Result<bool, CertError> {
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    // The key file is made 0600 before openssl writes into it, so the key
    // is never readable by others, not even for a moment.
    let key_file = |source| CertError::KeyFile {
        path: key.to_path_buf(),
        source,
    };
    match std::fs::remove_file(key) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_file(e)),
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key)
        .map_err(key_file)?;
    let out = Command::new("openssl")
        .args([
            "req", "-new", "-x509", "-days", "365", "-nodes", "-text", "-out",
        ])
        .arg(cert)
        .arg("-keyout")
        .arg(key)
        .arg("-subj")
        .arg(format!("/CN={hostname}"))
        // Clients that match names only against the subjectAltName
        // (rustls, recent JDBC) can then use sslmode=verify-full with this
        // certificate as their root.
        .arg("-addext")
        .arg(subject_alt_name(hostname))
        .stdin(Stdio::null())
        .output()
        .map_err(CertError::Spawn)?;
    if !out.status.success() {
        return Err(CertError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    tracing::info!(
        "Created a self-signed certificate for \"{hostname}\" in {}",
        cert.display()
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::{ensure_self_signed, subject_alt_name};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_made_private_and_regenerated_in_place() {
        let dir = std::env::temp_dir().join(format!("pgaf-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        // A stale key readable by everyone, without its certificate.
        std::fs::write(&key, "old").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(ensure_self_signed(&cert, &key, "localhost").unwrap());
        let meta = std::fs::metadata(&key).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&key)
            .unwrap()
            .contains("PRIVATE KEY"));
        // Both there: nothing is made again.
        assert!(!ensure_self_signed(&cert, &key, "localhost").unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_alt_name_is_an_address_or_a_dns_name() {
        assert_eq!(subject_alt_name("10.0.0.5"), "subjectAltName=IP:10.0.0.5");
        assert_eq!(subject_alt_name("[::1]"), "subjectAltName=IP:::1");
        assert_eq!(
            subject_alt_name("node1.example.com"),
            "subjectAltName=DNS:node1.example.com"
        );
    }
}
