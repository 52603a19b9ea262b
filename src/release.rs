//! `mangaassist release`: announce a volume's release time to precompute, which pre-warms the
//! answers customers will ask about it an hour before (seed 004 Q19), and list the schedule.

use std::{
    fmt::Write as _,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use mangaassist_client::PrecomputeClient;
use mangaassist_proto::v1 as pb;

const DEADLINE: Duration = Duration::from_secs(10);

/// Unix milliseconds of `--at` (RFC 3339 in UTC, `2027-01-05T15:00:00Z`) or `--in` (a
/// duration from now, `90m`, `2h`): exactly one of them.
pub fn release_time(at: Option<&str>, r#in: Option<&str>) -> anyhow::Result<i64> {
    let t = match (at, r#in) {
        (Some(at), None) => humantime::parse_rfc3339(at).with_context(|| {
            format!("--at `{at}`: give an RFC 3339 time in UTC, like 2027-01-05T15:00:00Z")
        })?,
        (None, Some(d)) => {
            let d = humantime::parse_duration(d)
                .with_context(|| format!("--in `{d}`: give a duration, like 90m or 2h"))?;
            SystemTime::now() + d
        }
        _ => bail!("give the release time with --at or --in (one of them)"),
    };
    let ms = t
        .duration_since(UNIX_EPOCH)
        .context("the release time is before 1970")?
        .as_millis();
    Ok(i64::try_from(ms)?)
}

fn utc(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn describe(r: &pb::ReleaseInfo, out: &mut String) {
    let state = if r.warmed_ms > 0 {
        format!("pre-warmed {} ({} answers)", utc(r.warmed_ms), r.written)
    } else {
        format!("pre-warms at {}", utc(r.prewarm_at_ms))
    };
    let _ = writeln!(
        out,
        "{} {} \"{}\" on sale {}: {state}",
        r.store_id,
        r.product_id,
        r.title,
        utc(r.release_at_ms)
    );
}

pub async fn schedule(
    client: &PrecomputeClient,
    store: &str,
    product: &str,
    release_at_ms: i64,
) -> anyhow::Result<String> {
    let r = client
        .schedule_release(
            pb::ScheduleReleaseRequest {
                store_id: store.into(),
                product_id: product.into(),
                release_at_ms,
            },
            DEADLINE,
        )
        .await
        .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?;
    let mut out = String::new();
    describe(&r, &mut out);
    for q in &r.questions {
        let _ = writeln!(out, "  {q}");
    }
    Ok(out.trim_end().to_string())
}

pub async fn list(client: &PrecomputeClient, store: Option<&str>) -> anyhow::Result<String> {
    let r = client
        .list_releases(
            pb::ListReleasesRequest {
                store_id: store.unwrap_or_default().into(),
            },
            DEADLINE,
        )
        .await
        .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?;
    if r.releases.is_empty() {
        return Ok("no releases scheduled".into());
    }
    let mut out = String::new();
    for rel in &r.releases {
        describe(rel, &mut out);
    }
    Ok(out.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_time_is_a_utc_time_or_a_duration_never_both() {
        assert_eq!(
            release_time(Some("2027-01-05T15:00:00Z"), None).unwrap(),
            1_799_161_200_000
        );
        let soon = release_time(None, Some("90m")).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((soon - now - 5_400_000).abs() < 60_000);
        assert!(release_time(None, None).is_err());
        assert!(release_time(Some("2027-01-05T15:00:00Z"), Some("1h")).is_err());
        let e = release_time(Some("tomorrow"), None).unwrap_err();
        assert!(format!("{e:#}").contains("RFC 3339"), "{e:#}");
    }
}
