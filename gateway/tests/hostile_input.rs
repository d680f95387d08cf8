//! Hostile input, as properties: whatever bytes arrive, the request classifier, the path and
//! query decoding and the XML bodies the gateway reads (Delete, Retention, LegalHold,
//! ObjectLockConfiguration) never panic; every bad input is a clear 4xx; and nothing a client
//! sends can put a line break, a space or a control character into the backend request line.

use http::{HeaderMap, Method};
use proptest::prelude::*;
use wormgate::s3::op::S3Op;
use wormgate::s3::target::{Query, Target};
use wormgate::s3::{lock_headers, lock_xml};

/// Valid bodies, one per parser in the order of `parse_all`, to mutate from.
const SEEDS: &[&str] = &[
    r#"<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>COMPLIANCE</Mode><RetainUntilDate>2030-01-01T00:00:00.000Z</RetainUntilDate></Retention>"#,
    r"<LegalHold><Status>ON</Status></LegalHold>",
    r"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>3</Days></DefaultRetention></Rule></ObjectLockConfiguration>",
    r"<Delete><Quiet>true</Quiet><Object><Key>a/b&amp;c</Key><VersionId>v1</VersionId></Object><Object><Key>d</Key></Object></Delete>",
];

/// A seed with bytes replaced, inserted or cut at random places.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0..SEEDS.len(),
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
    )
        .prop_map(|(seed, edits)| {
            let mut b = SEEDS[seed].as_bytes().to_vec();
            for (at, byte, kind) in edits {
                if b.is_empty() {
                    b.push(byte);
                    continue;
                }
                let at = at % b.len();
                match kind {
                    0 => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ => b.truncate(at),
                }
            }
            b
        })
}

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        mutated(),
        "[<>/a-zA-Z0-9 =\"&;:.-]{0,300}".prop_map(String::into_bytes),
    ]
}

/// Every parser on `bytes`: whether each accepted it; a refusal must be a 4xx.
fn parse_all(bytes: &[u8]) -> Result<[bool; 4], TestCaseError> {
    let results = [
        lock_xml::parse_retention(bytes).map(|_| ()),
        lock_xml::parse_legal_hold(bytes).map(|_| ()),
        lock_xml::parse_lock_configuration(bytes).map(|_| ()),
        lock_xml::parse_delete(bytes).map(|_| ()),
    ];
    let mut ok = [false; 4];
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(()) => ok[i] = true,
            Err(e) => {
                let status = e.status();
                prop_assert!(status.is_client_error(), "{e:?} became {status}");
            }
        }
    }
    Ok(ok)
}

/// No byte the backend would read as the end of a request-line token or of a header.
fn clean(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn xml_bodies_never_panic_and_bad_ones_are_4xx(bytes in bodies()) {
        parse_all(&bytes)?;
    }

    #[test]
    fn classifier_and_paths_never_panic_nor_inject(
        method in prop_oneof![
            Just(Method::GET), Just(Method::PUT), Just(Method::POST), Just(Method::DELETE),
            Just(Method::HEAD), Just(Method::OPTIONS), Just(Method::PATCH),
        ],
        path in "/[ -~\u{80}-\u{10ffff}%\r\n\t]{0,80}",
        raw_query in "[ -~%\r\n\t]{0,120}",
        header_value in "[ -~]{0,40}",
    ) {
        let query = Query::parse(&raw_query);
        let mut headers = HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&header_value) {
            headers.insert("x-amz-copy-source", v.clone());
            headers.insert("x-amz-object-lock-mode", v);
        }
        if let Ok(target) = Target::path_style(&path) {
            let _ = S3Op::classify(&method, &target, &query, &headers);
            let backend = target.backend_path();
            prop_assert!(clean(&backend), "path {path:?} became {backend:?}");
            prop_assert!(backend.starts_with('/'));
            // The backend is asked for the very bucket and key the decision was about.
            let again = Target::path_style(&backend);
            prop_assert_eq!(again.as_ref(), Ok(&target), "path {:?} became {:?}", path, backend);
        }
        if let Some(q) = query.to_backend_string() {
            prop_assert!(clean(&q), "query {raw_query:?} became {q:?}");
        }
    }
}

/// An instant written in an offset, in one of the spellings ISO 8601 / RFC 3339 allow.
fn spelled(
    nanos: i64,
    offset_minutes: i32,
    spelling: u8,
) -> (chrono::DateTime<chrono::Utc>, String) {
    // The instant the text names: what a spelling cannot carry is not part of it.
    let nanos = match spelling {
        1 => nanos - nanos.rem_euclid(1_000_000),
        2 => nanos - nanos.rem_euclid(1_000),
        _ => nanos,
    };
    let instant = chrono::DateTime::from_timestamp_nanos(nanos);
    let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).expect("offset");
    let local = instant.with_timezone(&offset);
    let text = match spelling {
        0 => local.to_rfc3339_opts(chrono::SecondsFormat::Nanos, false),
        1 => local.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        2 => local.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        _ => local.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    };
    (instant, text)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever offset and spelling the client uses, a lock date in a header and in a
    /// Retention body is read as the instant it names, at millisecond precision, never earlier:
    /// the date forwarded and recorded is never shorter than the one asked for.
    #[test]
    fn lock_dates_are_the_instants_they_name(
        // 2000-01-01 to 2200-01-01, to the nanosecond.
        nanos in 946_684_800_000_000_000i64..7_258_118_400_000_000_000i64,
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
        spelling in 0u8..4,
    ) {
        let (instant, text) = spelled(nanos, offset_minutes, spelling);
        let header = lock_headers::parse_date(&text);
        let body = format!(
            "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>{text}</RetainUntilDate></Retention>"
        );
        let xml = lock_xml::parse_retention(body.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?
            .map(|r| r.until);
        prop_assert_eq!(header, xml, "{} read two ways", text);
        let read = header.ok_or_else(|| TestCaseError::fail(format!("{text} unreadable")))?;
        prop_assert!(read >= instant, "{text} read as {read}, before {instant}");
        prop_assert!(
            read - instant < chrono::TimeDelta::milliseconds(1),
            "{text} read as {read}, a millisecond or more after {instant}"
        );
        prop_assert_eq!(read.timestamp_subsec_nanos() % 1_000_000, 0);
        // What is forwarded reads back as the same instant.
        let forwarded = lock_headers::format_date(read);
        prop_assert!(forwarded.ends_with('Z'));
        prop_assert_eq!(lock_headers::parse_date(&forwarded), Some(read));
    }
}

#[test]
fn the_seeds_parse_with_their_own_parser() {
    for (i, seed) in SEEDS.iter().enumerate() {
        let ok = parse_all(seed.as_bytes()).expect("no panic, 4xx only");
        assert!(ok[i], "seed {i} must parse with its own parser");
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let cap = lock_xml::POLICY_BODY_CAP;
    let over = s3s::Body::from(bytes::Bytes::from(vec![b'a'; cap + 1]));
    let err = lock_xml::read_capped(over, cap)
        .await
        .expect_err("over the cap");
    assert!(err.status().is_client_error(), "{err:?}");
    let at = s3s::Body::from(bytes::Bytes::from(vec![b'a'; cap]));
    let ok = lock_xml::read_capped(at, cap).await.expect("at the cap");
    assert_eq!(ok.len(), cap);
}
