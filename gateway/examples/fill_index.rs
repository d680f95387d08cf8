//! Fills a lock index with N committed records in one bucket, for the audit export's memory
//! check (`tests/audit_rss.sh`): `fill_index DIR N`.

use std::path::PathBuf;

use chrono::{TimeDelta, Utc};
use policy::index::{LockIndex, LockRecord, LockSource, SledIndex};
use policy::lock::{LegalHold, ObjectLock, ObjectRef, Retention, RetentionMode};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: fill_index DIR N"))?,
    );
    let n: u64 = args.next().unwrap_or_else(|| "1000000".into()).parse()?;
    std::fs::create_dir_all(&dir)?;
    let index = SledIndex::open(&dir)?;
    let now = Utc::now();
    for i in 0..n {
        let lock = ObjectLock {
            retention: Some(Retention {
                mode: if i % 2 == 0 {
                    RetentionMode::Compliance
                } else {
                    RetentionMode::Governance
                },
                until: now + TimeDelta::days(1 + i64::try_from(i % 400)?),
            }),
            legal_hold: LegalHold::Off,
        };
        let object = ObjectRef::new("audit-export", &format!("backups/{i:09}.blob"), None);
        index.put(&LockRecord::new(object, lock, LockSource::Header, now))?;
    }
    index.flush()?;
    println!("{n} records in {}", dir.display());
    Ok(())
}
