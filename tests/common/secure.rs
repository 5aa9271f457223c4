//! What lets a test in when the nodes are locked down as in production: a CA that signs node
//! and client certificates (rcgen), and production's ACL users on an ACL file.

use std::path::Path;

use redis_cluster_bootstrap::commands;

use super::{Options, TlsFiles};

/// The bootstrap user (the rules `src/commands.rs` builds) and its password.
pub const BOOTSTRAP: (&str, &str) = ("bootstrap", "b00tstrap-pw");
/// The application user (production's rules).
pub const APP: (&str, &str) = ("app", "app-pw");
/// The user replicas authenticate as (`masteruser`).
pub const REPLICATION: (&str, &str) = ("replication", "repl-pw");
/// The backup user (the rules `src/commands.rs` builds).
pub const BACKUP: (&str, &str) = ("backup", "b4ckup-pw");
/// The restore user (the rules `src/commands.rs` builds).
pub const RESTORE: (&str, &str) = ("restore", "rest0re-pw");
/// The harness's own user: every command.
pub const ADMIN: (&str, &str) = ("admin", "admin-pw");

/// A CA that signs node and client certificates.
pub struct Ca {
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// Writes `<file>.crt` and `<file>.key` in `dir`: a certificate for `names` (IPs become IP
    /// SANs, the rest DNS SANs), expired a year ago when `expired`.
    pub fn issue(&self, dir: &Path, file: &str, names: &[String], expired: bool) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(names.to_vec()).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }
}

/// The rules of production's user `user`: its file in `overlays/production/acl/` (the ConfigMap
/// `redis-acl`), read as the Redis container's startup reads it.
pub fn production_rules(user: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("overlays/production/acl")
        .join(user);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    redis_cluster_bootstrap::pod::users::rules(user, &text).unwrap()
}

/// An ACL file with production's users (and the harness's `admin`), and the options that start a
/// node on it with replication as the replication user. The directory must outlive the nodes.
pub fn acl_options(dir: &Path) -> Options {
    let file = dir.join("users.acl");
    let acl = format!(
        "user default off\n\
         user {} on >{} {}\n\
         user {} on >{} {}\n\
         user {} on >{} {}\n\
         user {} on >{} {}\n\
         user {} on >{} {}\n\
         user {} on >{} ~* &* +@all\n",
        APP.0,
        APP.1,
        production_rules(APP.0),
        BOOTSTRAP.0,
        BOOTSTRAP.1,
        commands::bootstrap_rules(),
        REPLICATION.0,
        REPLICATION.1,
        commands::replication_rules(),
        BACKUP.0,
        BACKUP.1,
        commands::backup_rules(),
        RESTORE.0,
        RESTORE.1,
        commands::restore_rules(),
        ADMIN.0,
        ADMIN.1,
    );
    std::fs::write(&file, acl).unwrap();
    let pair = |(user, password): (&str, &str)| Some((user.to_string(), password.to_string()));
    Options {
        extra: vec![
            "--aclfile".into(),
            file.display().to_string(),
            "--masteruser".into(),
            REPLICATION.0.into(),
            "--masterauth".into(),
            REPLICATION.1.into(),
        ],
        cli_user: pair(ADMIN),
        bootstrap_user: pair(BOOTSTRAP),
        ..Options::default()
    }
}

/// A directory with `ca.crt`, a client certificate, and a certificate for each of `ips` (an IP
/// SAN each): what [`Options::tls`] needs for nodes that may start on any of these addresses.
pub fn tls_for_ips(dir: &Path, ips: &[String]) -> TlsFiles {
    let ca = Ca::new("redis-cluster-bootstrap test CA");
    std::fs::write(dir.join("ca.crt"), &ca.pem).unwrap();
    ca.issue(dir, "client", &["bootstrap".to_string()], false);
    for ip in ips {
        ca.issue(dir, ip, std::slice::from_ref(ip), false);
    }
    TlsFiles {
        dir: dir.to_path_buf(),
        auth_clients: true,
    }
}
