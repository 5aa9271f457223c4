//! `synced`: has the local node applied the secrets as they are now? The check an operator runs
//! in every pod between two steps of a password change, or after a certificate renewal
//! (`kubectl exec POD -c watch -- redis-cluster-bootstrap synced`): one line per user, one for
//! `masterauth`, one for the certificate, and exit 0 only when every one matches. It changes
//! nothing; the `watch` sidecar is what applies.

use crate::client::Client;
use crate::passwords;
use crate::pod::Context;
use crate::pod::watch::certificates::{self, Identity};
use crate::pod::watch::users::{self, Masterauth, Standing};
use crate::tls::TlsFiles;
use crate::{Error, Result, one_line};

/// Prints the lines on stdout; exit 0 when the node matches the files, 1 when not yet.
pub async fn run(ctx: &Context) -> Result<()> {
    let settings = &ctx.settings;
    if settings.users_dir.is_none() && settings.tls_files.is_none() {
        return Err(Error::Config(
            "neither BOOTSTRAP_USERS_DIR nor BOOTSTRAP_TLS_CA_FILE is set: nothing to compare the \
             node with (run it where `watch` runs, with its variables)"
                .into(),
        ));
    }
    let mut lines: Vec<(bool, String)> = Vec::new();
    // `main` leaves the files to this command: files that do not load (a broken renewal) are one
    // of the things it reports, and the CA alone still reaches a node that does not require a
    // client certificate.
    let tls = match &settings.tls_files {
        None => None,
        Some(files) => match files.load() {
            Ok(tls) => Some(tls),
            Err(e) => {
                lines.push((
                    false,
                    format!("tls: the files do not load: {}", one_line(&e)),
                ));
                let ca_only = TlsFiles {
                    ca: files.ca.clone(),
                    client: None,
                };
                Some(ca_only.load()?)
            }
        },
    };
    let client = Client::connect(&ctx.local, settings.credentials.as_ref(), tls.as_ref())
        .await?
        .for_watch();
    if let Some(dir) = &settings.users_dir {
        let listed = passwords::read_dir(dir, "BOOTSTRAP_USERS_DIR")?;
        for (user, standing) in users::standings(&client, &listed).await? {
            let ok = matches!(standing, Standing::InSync(..));
            lines.push((ok, users::describe(&user, &standing, dir)));
        }
        lines.push(match users::masterauth(&client, &listed).await? {
            Masterauth::InSync(user) => (
                true,
                format!(
                    "masterauth: the first password of {}",
                    dir.join(user).display()
                ),
            ),
            Masterauth::Differs(user, _) => (
                false,
                format!(
                    "masterauth: not the first password of {} yet",
                    dir.join(user).display()
                ),
            ),
            Masterauth::NotOurs => (
                true,
                format!(
                    "masterauth: the node replicates as no user of {}",
                    dir.display()
                ),
            ),
        });
    }
    if let Some(tls) = &tls {
        let files = certificates::node_files(&client).await?;
        let cert_file = files
            .iter()
            .find(|(name, _)| name == "tls-cert-file")
            .map(|(_, path)| path.clone());
        let serving = certificates::serving(tls, &ctx.local).await;
        lines.push(match (cert_file, serving) {
            (Some(file), Ok(serving)) => match Identity::of_file(std::path::Path::new(&file)) {
                Ok(wanted) if wanted.fingerprint == serving.fingerprint => (
                    true,
                    format!("tls: the node serves the certificate of {file} ({serving})"),
                ),
                Ok(wanted) => (
                    false,
                    format!(
                        "tls: the node serves {serving}, but {file} holds {wanted} (not reloaded \
                         yet, or refused: see the watch container's log)"
                    ),
                ),
                Err(e) => (false, format!("tls: {}", one_line(&e))),
            },
            (None, _) => (false, "tls: the node has no tls-cert-file".into()),
            (_, Err(e)) => (false, format!("tls: {}", one_line(&e))),
        });
    }
    for (ok, line) in &lines {
        println!("{} {line}", if *ok { "ok" } else { "NOT" });
    }
    let behind = lines.iter().filter(|(ok, _)| !ok).count();
    if behind == 0 {
        Ok(())
    } else {
        Err(Error::NotReady(format!(
            "{} has not applied {behind} of the {} item(s) above yet (the watch sidecar applies \
             them within seconds of a change)",
            ctx.local,
            lines.len()
        )))
    }
}
