//! The last check: the target's key count against the manifest's count at the cut. Keys whose TTL
//! passed since the cut are not restored and are reported, not an error; any other difference is.

use futures::future::try_join_all;

use crate::observation;
use crate::{Error, Result};

use super::route::Route;

/// The target's keys, over every master.
pub async fn count(route: &Route) -> Result<u64> {
    let counts = try_join_all(route.masters.iter().map(|m| async move {
        let info: String = m
            .query(redis::cmd("INFO").arg("keyspace"), "INFO keyspace")
            .await?;
        Ok::<_, Error>(observation::keys(&info))
    }))
    .await?;
    Ok(counts.iter().sum())
}

/// The verdict on `found` keys (the restore's own progress key excluded) against `at_cut`, when
/// `expired` keys were not restored because their TTL had passed and at most `may_expire` more may
/// have expired since (keys with a TTL); `Err` is the refusal that says what differs.
pub fn verdict(found: u64, at_cut: u64, expired: u64, may_expire: u64) -> Result<String> {
    let expected = at_cut.saturating_sub(expired);
    if found == expected {
        return Ok(format!(
            "verified: {found} keys on the target, as at the cut ({at_cut} keys, {expired} expired since)"
        ));
    }
    if found < expected && expected - found <= may_expire {
        let gone = expected - found;
        return Ok(format!(
            "verified: {found} keys on the target; {at_cut} at the cut, {} with a TTL that passed since",
            expired + gone
        ));
    }
    Err(Error::Refused(format!(
        "verification failed: the target holds {found} keys where the backup had {at_cut} at the \
         cut ({expired} expired since): look at the target before using it"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_keys_are_reported_and_other_differences_refused() {
        assert!(verdict(100, 100, 0, 0).unwrap().contains("as at the cut"));
        assert!(verdict(97, 100, 2, 5).unwrap().contains("3 with a TTL"));
        assert!(verdict(90, 100, 0, 5).is_err());
        assert!(verdict(101, 100, 0, 5).is_err());
    }
}
