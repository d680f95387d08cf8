//! The listings of a versioned bucket against a model of S3: random keys (spaces, `!`, `"`,
//! control characters, unicode, keys that are prefixes of others), 0–3 versions and delete
//! markers each, with and without a `null` version, over a backend that answers
//! ListObjectsV2 as S3 does, in pages of 1–4 names. Every listing, followed page by page from
//! the start, must give exactly what S3 gives: ListObjects (current versions, common prefixes
//! only over current keys) and ListObjectVersions (newest first, `null` last, IsLatest).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use wormgate::error::GatewayError;
use wormgate::versions::layout::{self, Kind, VersionId};
use wormgate::versions::listing::{
    BackendItem, BackendList, BackendObject, BackendPage, ListRequest, Listed, Lister,
    VersionsAfter, list_current, list_versions,
};

/// A bucket's names, listed as S3's ListObjectsV2 lists them.
struct Store {
    names: BTreeSet<String>,
    calls: AtomicUsize,
}

fn object(name: &str) -> BackendObject {
    BackendObject {
        name: name.to_owned(),
        size: name.len() as u64,
        etag: format!("\"{}\"", name.len()),
        last_modified: "2026-12-01T00:00:00.000Z".into(),
        storage_class: None,
    }
}

#[async_trait::async_trait]
impl Lister for Store {
    async fn list(&self, r: &BackendList) -> Result<BackendPage, GatewayError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let start = r.continuation.clone().or_else(|| r.start_after.clone());
        let lower = match &start {
            Some(s) => Bound::Excluded(s.clone()),
            None => Bound::Unbounded,
        };
        let mut items: Vec<BackendItem> = Vec::new();
        for name in self.names.range((lower, Bound::Unbounded)) {
            if !name.starts_with(&r.prefix) {
                if name.as_str() > r.prefix.as_str() && !r.prefix.is_empty() {
                    break;
                }
                continue;
            }
            let rolled = r.delimiter.as_deref().and_then(|d| {
                name[r.prefix.len()..]
                    .find(d)
                    .map(|at| name[..r.prefix.len() + at + d.len()].to_owned())
            });
            match rolled {
                Some(cp) => {
                    let seen = matches!(items.last(), Some(BackendItem::Prefix(p)) if *p == cp);
                    if seen || start.as_ref().is_some_and(|s| cp <= *s) {
                        continue;
                    }
                    items.push(BackendItem::Prefix(cp));
                }
                None => items.push(BackendItem::Object(object(name))),
            }
            if items.len() > r.max_keys as usize {
                break;
            }
        }
        let truncated = items.len() > r.max_keys as usize;
        items.truncate(r.max_keys as usize);
        let next_continuation = truncated.then(|| match items.last() {
            Some(BackendItem::Object(o)) => o.name.clone(),
            Some(BackendItem::Prefix(p)) => p.clone(),
            None => String::new(),
        });
        Ok(BackendPage {
            items,
            next_continuation,
        })
    }
}

/// One key's history: versions newest first (true = delete marker), and a `null` version.
#[derive(Debug, Clone)]
struct History {
    key: String,
    versions: Vec<(VersionId, bool)>,
    null: bool,
}

fn key_strategy() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'b', ' ', '!', '"', '/', '-', '.', '\u{1}', 'é', '~',
    ]);
    prop::collection::vec(chars, 1..5).prop_map(|c| c.into_iter().collect())
}

fn bucket_strategy() -> impl Strategy<Value = Vec<History>> {
    prop::collection::btree_map(
        key_strategy(),
        (prop::collection::vec(any::<bool>(), 0..4), any::<bool>()),
        0..14,
    )
    .prop_map(|m| {
        m.into_iter()
            .enumerate()
            .filter(|(_, (_, (v, null)))| !v.is_empty() || *null)
            .map(|(i, (key, (markers, null)))| {
                let n = markers.len() as u64;
                let versions = markers
                    .into_iter()
                    .enumerate()
                    .map(|(j, marker)| {
                        let kind = if marker {
                            Kind::DeleteMarker
                        } else {
                            Kind::Object
                        };
                        // Newest first: the first has the latest time.
                        let nanos = 1_000_000 + (n - j as u64) * 10;
                        (VersionId::from_parts(nanos, i as u64, kind), marker)
                    })
                    .collect();
                History {
                    key,
                    versions,
                    null,
                }
            })
            .collect()
    })
}

fn store_of(bucket: &[History]) -> Store {
    let mut names = BTreeSet::new();
    for h in bucket {
        if h.null {
            names.insert(h.key.clone());
        }
        for (id, _) in &h.versions {
            names.insert(layout::version_name(&h.key, id));
        }
    }
    Store {
        names,
        calls: AtomicUsize::new(0),
    }
}

/// What S3 lists: entries in order, each rolled up at the delimiter.
fn roll_up(prefix: &str, delimiter: Option<&str>, name: &str) -> Option<String> {
    let d = delimiter?;
    name[prefix.len()..]
        .find(d)
        .map(|at| name[..prefix.len() + at + d.len()].to_owned())
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Row {
    Prefix(String),
    Current(String, String),
    Version(String, String, bool, bool),
}

fn id_or_null(v: Option<&VersionId>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.as_str().to_owned())
}

fn expected_current(bucket: &[History], prefix: &str, delimiter: Option<&str>) -> Vec<Row> {
    let mut out: BTreeMap<String, Row> = BTreeMap::new();
    for h in bucket.iter().filter(|h| h.key.starts_with(prefix)) {
        let latest = match h.versions.first() {
            Some((_, true)) => continue,
            Some((id, false)) => id.as_str().to_owned(),
            None => "null".to_owned(),
        };
        match roll_up(prefix, delimiter, &h.key) {
            Some(cp) => out.insert(cp.clone(), Row::Prefix(cp)),
            None => out.insert(h.key.clone(), Row::Current(h.key.clone(), latest)),
        };
    }
    out.into_values().collect()
}

fn expected_versions(bucket: &[History], prefix: &str, delimiter: Option<&str>) -> Vec<Row> {
    let mut out = Vec::new();
    let mut prefixes = BTreeMap::new();
    for h in bucket.iter().filter(|h| h.key.starts_with(prefix)) {
        if let Some(cp) = roll_up(prefix, delimiter, &h.key) {
            prefixes.insert(cp.clone(), out.len());
            continue;
        }
        let mut first = true;
        for (id, marker) in &h.versions {
            out.push(Row::Version(
                h.key.clone(),
                id.as_str().to_owned(),
                first,
                *marker,
            ));
            first = false;
        }
        if h.null {
            out.push(Row::Version(h.key.clone(), "null".into(), first, false));
        }
    }
    // Common prefixes stand where their names sort.
    let mut rows: Vec<(String, usize, Row)> = out
        .into_iter()
        .enumerate()
        .map(|(i, r)| match &r {
            Row::Version(k, ..) => (k.clone(), i, r),
            _ => unreachable!(),
        })
        .collect();
    for cp in prefixes.into_keys() {
        rows.push((cp.clone(), 0, Row::Prefix(cp)));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    rows.into_iter().map(|(_, _, r)| r).collect()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

async fn all_current(store: &Store, request: &ListRequest) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    // Carried from page to page as a continuation token carries it.
    let mut plain_done = false;
    loop {
        let page = list_current(store, request, after.as_deref(), plain_done)
            .await
            .expect("listing");
        plain_done = page.plain_done;
        assert!(page.items.len() <= request.max_keys as usize);
        for item in &page.items {
            rows.push(match item {
                Listed::Prefix(p) => Row::Prefix(p.clone()),
                Listed::Entry(c) => Row::Current(c.key.clone(), id_or_null(c.version.as_ref())),
            });
        }
        if !page.truncated {
            return rows;
        }
        assert!(!page.items.is_empty(), "a truncated page gives something");
        after = page.items.last().map(|i| i.name().to_owned());
    }
}

async fn all_versions(store: &Store, request: &ListRequest) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut after = VersionsAfter::Start;
    loop {
        let page = list_versions(store, request, &after)
            .await
            .expect("listing");
        assert!(page.items.len() <= request.max_keys as usize);
        for item in &page.items {
            rows.push(match item {
                Listed::Prefix(p) => Row::Prefix(p.clone()),
                Listed::Entry(v) => Row::Version(
                    v.key.clone(),
                    id_or_null(v.version.as_ref()),
                    v.is_latest,
                    v.is_delete_marker(),
                ),
            });
        }
        if !page.truncated {
            return rows;
        }
        after = match page.items.last().expect("a truncated page gives something") {
            Listed::Prefix(p) => VersionsAfter::Key(p.clone()),
            Listed::Entry(v) => match &v.version {
                Some(id) => VersionsAfter::Version(v.key.clone(), id.clone()),
                None => VersionsAfter::Key(v.key.clone()),
            },
        };
    }
}

fn delimiter_strategy() -> impl Strategy<Value = Option<String>> {
    prop::sample::select(vec![
        None,
        Some("/"),
        Some(" "),
        Some("a"),
        Some("."),
        Some("!"),
        Some("b/"),
    ])
    .prop_map(|d| d.map(str::to_owned))
}

fn prefix_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "a/", " ", ".", "é", "a "]).prop_map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn listings_are_s3s_at_every_page_boundary(
        bucket in bucket_strategy(),
        prefix in prefix_strategy(),
        delimiter in delimiter_strategy(),
        max_keys in 1u32..5,
        backend_page in 1u32..5,
    ) {
        let store = store_of(&bucket);
        let request = ListRequest {
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            max_keys,
            backend_page,
        };
        let (current, versions) = block_on(async {
            (all_current(&store, &request).await, all_versions(&store, &request).await)
        });
        prop_assert_eq!(current, expected_current(&bucket, &prefix, delimiter.as_deref()));
        prop_assert_eq!(versions, expected_versions(&bucket, &prefix, delimiter.as_deref()));
    }
}

#[test]
fn the_gateways_folder_never_shows_and_is_skipped_in_one_jump() {
    // Plain keys on both sides of the reserved folder, and many versions inside it.
    let mut bucket = vec![
        History {
            key: ".a".into(),
            versions: vec![],
            null: true,
        },
        History {
            key: "z".into(),
            versions: vec![],
            null: true,
        },
    ];
    for i in 0..200u32 {
        bucket.push(History {
            key: format!("k{i:03}"),
            versions: vec![(VersionId::from_parts(5, u64::from(i), Kind::Object), false)],
            null: false,
        });
    }
    bucket.sort_by(|a, b| a.key.cmp(&b.key));
    let store = store_of(&bucket);
    for delimiter in [None, Some("/".to_owned()), Some(".".to_owned())] {
        let request = ListRequest {
            prefix: String::new(),
            delimiter: delimiter.clone(),
            max_keys: 1000,
            backend_page: 1000,
        };
        let rows = block_on(all_current(&store, &request));
        assert_eq!(
            rows,
            expected_current(&bucket, "", delimiter.as_deref()),
            "{delimiter:?}"
        );
        assert!(
            rows.iter().all(|r| !format!("{r:?}").contains(".wormgate")),
            "{rows:?}"
        );
    }
    // A listing of 202 keys in one page costs a handful of backend pages, not one per key.
    store.calls.store(0, Ordering::Relaxed);
    let request = ListRequest {
        prefix: String::new(),
        delimiter: None,
        max_keys: 1000,
        backend_page: 1000,
    };
    let rows = block_on(all_current(&store, &request));
    assert_eq!(rows.len(), 202);
    assert!(
        store.calls.load(Ordering::Relaxed) <= 4,
        "{}",
        store.calls.load(Ordering::Relaxed)
    );
    // Asking for the reserved folder itself gives nothing.
    let request = ListRequest {
        prefix: ".wormgate/".into(),
        delimiter: None,
        max_keys: 1000,
        backend_page: 1000,
    };
    assert!(block_on(all_current(&store, &request)).is_empty());
    assert!(block_on(all_versions(&store, &request)).is_empty());
}

/// A long listing reads each backend page of the versions folder once: a page of current
/// keys ends where a backend page is used up rather than read it again for the next request,
/// and the plain names, once none is left, are not listed again on later pages. Where plain
/// names (`null` versions) are spread among the keys, each page reads their listing again.
#[test]
fn a_long_listing_reads_each_backend_page_once() {
    for with_null in [false, true] {
        let bucket: Vec<History> = (0..3000u64)
            .map(|i| {
                let n = if i % 2 == 0 { 3 } else { 1 };
                History {
                    key: format!("k-{i:05}"),
                    versions: (0..n)
                        .map(|j| {
                            let nanos = 1_000_000 + (n - j) * 10;
                            (VersionId::from_parts(nanos, i, Kind::Object), false)
                        })
                        .collect(),
                    null: with_null && i % 7 == 0,
                }
            })
            .collect();
        let store = store_of(&bucket);
        let request = ListRequest {
            prefix: String::new(),
            delimiter: None,
            max_keys: 250,
            backend_page: 100,
        };
        let rows = block_on(all_current(&store, &request));
        assert_eq!(rows.len(), 3000);
        let calls = store.calls.load(Ordering::Relaxed);
        let pages = store.names.len().div_ceil(100);
        let client_pages = 3000usize.div_ceil(125);
        println!(
            "null versions {with_null}: {} backend names in {pages} pages: {calls} listings",
            store.names.len()
        );
        // Two listings of plain names at the start (the second past the versions folder),
        // and one to spare.
        let most = if with_null {
            pages + client_pages + 3
        } else {
            pages + 3
        };
        assert!(calls <= most, "{calls} listings for {pages} backend pages");
    }
}
