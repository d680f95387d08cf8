//! Listings of a versioned bucket, served from the backend's own listings (see `layout`).
//!
//! Two ordered streams are read page by page and merged by key, holding no more than a page of
//! each: the plain names (the `null` versions, with the reserved folder skipped in one jump)
//! and the versions folder (each key's versions, newest first). Memory stays flat whatever the
//! number of keys or versions; a page of the client's costs a few pages of the backend's.
//!
//! - [`list_current`] is ListObjects (V1 and V2): each key's latest version, left out when it is
//!   a delete marker; a common prefix only if a current key lies under it (S3 does not show a
//!   folder whose keys are all deleted), which costs a look under each common prefix that has
//!   versions.
//! - [`list_versions`] is ListObjectVersions: every version and delete marker, key order, newest
//!   first, the `null` version last; a common prefix for anything under it.
//!
//! Both start strictly after a position and stop after `max_keys` entries, saying whether
//! anything follows, as S3 does at every page boundary.

use std::collections::VecDeque;

use crate::error::GatewayError;
use crate::versions::layout::{self, Kind, VersionId};

pub use crate::s3::list_xml::{BackendItem, BackendObject, BackendPage};

/// One ListObjectsV2 request to the backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendList {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub start_after: Option<String>,
    pub continuation: Option<String>,
    pub max_keys: u32,
}

/// Something that answers ListObjectsV2 for one bucket: the backend, or a model of it.
#[async_trait::async_trait]
pub trait Lister: Send + Sync {
    async fn list(&self, request: &BackendList) -> Result<BackendPage, GatewayError>;
}

/// One backend listing, read lazily from a position, which can jump ahead.
struct Cursor<'a> {
    lister: &'a dyn Lister,
    prefix: String,
    delimiter: Option<String>,
    start_after: Option<String>,
    continuation: Option<String>,
    buffer: VecDeque<BackendItem>,
    exhausted: bool,
    page: u32,
    /// Reads only what is buffered (`fill`); `missed` says it ran out before the end.
    offline: bool,
    missed: bool,
    /// The buffer was dropped for a jump (not used up) since the last backend page.
    jumped: bool,
}

impl<'a> Cursor<'a> {
    fn new(
        lister: &'a dyn Lister,
        prefix: String,
        delimiter: Option<String>,
        start_after: Option<String>,
        page: u32,
    ) -> Self {
        Self {
            lister,
            prefix,
            delimiter,
            start_after,
            continuation: None,
            buffer: VecDeque::new(),
            exhausted: false,
            page,
            offline: false,
            missed: false,
            jumped: false,
        }
    }

    /// A cursor with nothing after its start (known without asking the backend).
    fn empty(lister: &'a dyn Lister, page: u32) -> Self {
        Self {
            exhausted: true,
            ..Self::new(lister, String::new(), None, None, page)
        }
    }

    /// Whether nothing is left: none buffered, and the backend said it had no more.
    fn is_done(&self) -> bool {
        self.buffer.is_empty() && self.exhausted
    }

    /// Whether the backend page read last is used up and more is to be read.
    fn used_up(&self) -> bool {
        self.buffer.is_empty() && !self.exhausted && !self.jumped
    }

    async fn peek(&mut self) -> Result<Option<&BackendItem>, GatewayError> {
        while self.buffer.is_empty() && !self.exhausted {
            if self.offline {
                self.missed = true;
                break;
            }
            let page = self
                .lister
                .list(&BackendList {
                    prefix: self.prefix.clone(),
                    delimiter: self.delimiter.clone(),
                    start_after: self.start_after.clone(),
                    continuation: self.continuation.clone(),
                    max_keys: self.page,
                })
                .await?;
            self.buffer.extend(page.items);
            self.jumped = false;
            self.continuation = page.next_continuation;
            self.exhausted = self.continuation.is_none();
        }
        Ok(self.buffer.front())
    }

    fn pop(&mut self) -> Option<BackendItem> {
        self.buffer.pop_front()
    }

    /// Goes on from after `name`, if that is ahead of where the cursor stands.
    fn jump_after(&mut self, name: &str) {
        let ahead = self.buffer.front().is_none_or(|front| front.name() <= name);
        if ahead {
            self.buffer.clear();
            self.jumped = true;
            self.continuation = None;
            self.exhausted = false;
            self.start_after = Some(name.to_owned());
        }
    }
}

/// A client-visible name in a listing: a key, or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Name {
    Key(String),
    Prefix(String),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Self::Key(s) | Self::Prefix(s) => s,
        }
    }
}

/// A key's `null` version or a common prefix, from the plain names.
enum Plain {
    Object(String, BackendObject),
    Prefix,
}

/// The plain names under `prefix`, with the gateway's reserved folder left out.
struct PlainStream<'a> {
    cursor: Cursor<'a>,
}

impl<'a> PlainStream<'a> {
    fn new(
        lister: &'a dyn Lister,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<String>,
        page: u32,
    ) -> Self {
        Self {
            cursor: Cursor::new(
                lister,
                prefix.to_owned(),
                delimiter.map(str::to_owned),
                after,
                page,
            ),
        }
    }

    /// The next plain name, and whether the backend rolled it up from names that may all be
    /// the gateway's (a prefix of the reserved folder).
    async fn peek(&mut self) -> Result<Option<(&str, bool)>, GatewayError> {
        loop {
            let Some(item) = self.cursor.peek().await? else {
                return Ok(None);
            };
            match item {
                BackendItem::Object(o) if layout::is_reserved(&o.name) => {
                    // The whole folder in one jump (its names all sort before its end).
                    if o.name.starts_with(layout::RESERVED)
                        && o.name.as_str() < layout::RESERVED_END
                    {
                        self.cursor.jump_after(layout::RESERVED_END);
                    } else {
                        self.cursor.pop();
                    }
                }
                BackendItem::Prefix(p) if p.starts_with(layout::RESERVED) => {
                    // Rolled up from the gateway's names (a delimiter found in them): the
                    // whole folder in one jump too, not a prefix at a time.
                    if p.as_str() < layout::RESERVED_END {
                        self.cursor.jump_after(layout::RESERVED_END);
                    } else {
                        self.cursor.pop();
                    }
                }
                _ => break,
            }
        }
        Ok(self.cursor.buffer.front().map(|item| match item {
            BackendItem::Object(o) => (o.name.as_str(), false),
            BackendItem::Prefix(p) => (p.as_str(), layout::RESERVED.starts_with(p.as_str())),
        }))
    }

    fn pop(&mut self) -> Option<Plain> {
        self.cursor.pop().map(|item| match item {
            BackendItem::Object(o) => Plain::Object(o.name.clone(), o),
            BackendItem::Prefix(_) => Plain::Prefix,
        })
    }
}

/// One entry of the versions folder, read back as the client sees it.
enum Versioned {
    Version(String, VersionId, BackendObject),
    Prefix(String),
}

/// The versions folder under `prefix`, rolled up at the client's delimiter (by the backend
/// where it can, else here, jumping over each common prefix).
struct VersionStream<'a> {
    cursor: Cursor<'a>,
    prefix: String,
    delimiter: Option<String>,
    rolls_up_here: bool,
    next: Option<Versioned>,
}

impl<'a> VersionStream<'a> {
    fn new(
        lister: &'a dyn Lister,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<String>,
        page: u32,
    ) -> Self {
        let by_backend = delimiter.filter(|d| layout::backend_can_roll_up(d));
        Self {
            cursor: Cursor::new(
                lister,
                layout::versions_prefix(prefix),
                by_backend.map(str::to_owned),
                start_after,
                page,
            ),
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            rolls_up_here: delimiter.is_some() && by_backend.is_none(),
            next: None,
        }
    }

    async fn peek(&mut self) -> Result<Option<&Versioned>, GatewayError> {
        while self.next.is_none() {
            let Some(item) = self.cursor.pop_ready().await? else {
                return Ok(None);
            };
            self.next = match item {
                BackendItem::Prefix(p) => layout::parse_versions_prefix(&p).map(Versioned::Prefix),
                BackendItem::Object(o) => match layout::parse_version_name(&o.name) {
                    None => {
                        tracing::warn!(name = %o.name, "a name in the versions folder that the gateway does not write; left out");
                        None
                    }
                    Some((key, id)) => Some(self.roll_up(key, id, o)),
                },
            };
        }
        Ok(self.next.as_ref())
    }

    /// The entry as the client's delimiter shows it; a common prefix made here is jumped over.
    fn roll_up(&mut self, key: String, id: VersionId, object: BackendObject) -> Versioned {
        if self.rolls_up_here
            && let Some(d) = &self.delimiter
            && let Some(at) = key[self.prefix.len()..].find(d.as_str())
        {
            let common = key[..self.prefix.len() + at + d.len()].to_owned();
            let mut past = layout::versions_prefix(&common);
            past.push(char::MAX);
            self.cursor.jump_after(&past);
            return Versioned::Prefix(common);
        }
        Versioned::Version(key, id, object)
    }

    fn pop(&mut self) -> Option<Versioned> {
        self.next.take()
    }
}

impl Cursor<'_> {
    async fn pop_ready(&mut self) -> Result<Option<BackendItem>, GatewayError> {
        self.peek().await?;
        Ok(self.pop())
    }
}

/// A key's latest version in a listing of current objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub key: String,
    /// `None` for the `null` version.
    pub version: Option<VersionId>,
    pub object: BackendObject,
}

/// An entry of a listing: a key's version, or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed<T> {
    Entry(T),
    Prefix(String),
}

impl Listed<Current> {
    /// The name a listing continues after.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Entry(c) => &c.key,
            Self::Prefix(p) => p,
        }
    }
}

/// A page of a listing and whether more follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage<T> {
    pub items: Vec<Listed<T>>,
    pub truncated: bool,
    /// No plain name (a `null` version, from before versioning) was left after the page's
    /// last entry: the next page need not look for one (`list_current`'s `plain_done`).
    pub plain_done: bool,
}

/// A listing's request, as the client gave it.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: u32,
    /// How many names to ask the backend for at once.
    pub backend_page: u32,
}

impl ListRequest {
    fn delimiter(&self) -> Option<&str> {
        self.delimiter.as_deref().filter(|d| !d.is_empty())
    }

    /// A listing of the gateway's own folder, or of nothing.
    fn hides_everything(&self) -> bool {
        self.prefix.starts_with(layout::RESERVED) || self.max_keys == 0
    }
}

/// The current objects: ListObjects and ListObjectsV2 after `after` (exclusive). With
/// `plain_done` (the previous page's, carried in a continuation token) the plain names are not
/// listed: the versions folder alone holds what follows. Plain names are the `null` versions
/// from before versioning, which only ever go away; one written since that page (by a gateway
/// that did not yet know the bucket versioned) shows from the next listing on.
///
/// # Errors
/// The backend's listing failed.
pub async fn list_current(
    lister: &dyn Lister,
    request: &ListRequest,
    after: Option<&str>,
    plain_done: bool,
) -> Result<ListPage<Current>, GatewayError> {
    if request.hides_everything() {
        return Ok(ListPage {
            items: Vec::new(),
            truncated: false,
            plain_done: true,
        });
    }
    let mut walk = CurrentWalk::new(lister, request, after);
    if plain_done {
        walk.plain.cursor = Cursor::empty(lister, request.backend_page.max(1));
    }
    fill(&mut walk, request.max_keys).await
}

/// A merge of the two streams, one client entry at a time.
trait Walk {
    type Entry;
    async fn next(&mut self) -> Result<Option<Listed<Self::Entry>>, GatewayError>;
    /// The backend listings it reads: the plain names', then the versions folder's.
    fn cursors(&mut self) -> [&mut dyn Reading; 2];
    /// Whether the next entry needs a backend page of the versions folder not read yet, the
    /// last one read being used up.
    fn page_used_up(&self) -> bool;
}

/// What `fill` asks of a backend listing once a page is full.
trait Reading {
    fn is_done(&self) -> bool;
    fn go_offline(&mut self);
    fn missed(&self) -> bool;
}

impl Reading for Cursor<'_> {
    fn is_done(&self) -> bool {
        Cursor::is_done(self)
    }

    fn go_offline(&mut self) {
        self.offline = true;
    }

    fn missed(&self) -> bool {
        self.missed
    }
}

/// Up to `max_keys` entries, and whether another follows.
///
/// Every backend page read is used whole, not read again by the next request: a page at
/// least half full ends where the versions folder's backend page ends (S3 too may answer
/// fewer than `max-keys`), and whether one more entry follows a full page is told from what
/// the backend already gave. Where that runs out before the backend's end, the page says
/// "truncated" (a next page may then be empty, as S3 allows).
async fn fill<W: Walk>(walk: &mut W, max_keys: u32) -> Result<ListPage<W::Entry>, GatewayError> {
    let mut items = Vec::new();
    let half = (max_keys as usize).div_ceil(2);
    while items.len() < max_keys as usize {
        if items.len() >= half && walk.page_used_up() {
            return Ok(ListPage {
                items,
                truncated: true,
                plain_done: walk.cursors()[0].is_done(),
            });
        }
        match walk.next().await? {
            Some(item) => items.push(item),
            None => {
                return Ok(ListPage {
                    items,
                    truncated: false,
                    plain_done: true,
                });
            }
        }
    }
    let plain_done = walk.cursors()[0].is_done();
    for cursor in walk.cursors() {
        cursor.go_offline();
    }
    let follows = walk.next().await?.is_some();
    let truncated = follows || walk.cursors().iter().any(|c| c.missed());
    Ok(ListPage {
        items,
        truncated,
        plain_done,
    })
}

/// The merge of both streams into current objects, one at a time.
struct CurrentWalk<'a> {
    lister: &'a dyn Lister,
    plain: PlainStream<'a>,
    versions: VersionStream<'a>,
    after: Option<String>,
    page: u32,
}

impl<'a> CurrentWalk<'a> {
    fn new(lister: &'a dyn Lister, request: &ListRequest, after: Option<&str>) -> Self {
        let page = request.backend_page.max(1);
        let delimiter = request.delimiter();
        Self {
            lister,
            plain: PlainStream::new(
                lister,
                &request.prefix,
                delimiter,
                after.map(str::to_owned),
                page,
            ),
            versions: VersionStream::new(
                lister,
                &request.prefix,
                delimiter,
                after.map(layout::after_versions_of),
                page,
            ),
            after: after.map(str::to_owned),
            page,
        }
    }

    /// The next name either stream holds, the smaller first.
    async fn next_name(&mut self) -> Result<Option<Name>, GatewayError> {
        let plain = self.plain.peek().await?.map(|(name, _)| name.to_owned());
        let plain_prefix = matches!(
            self.plain.cursor.buffer.front(),
            Some(BackendItem::Prefix(_))
        );
        let plain = plain.map(|n| {
            if plain_prefix {
                Name::Prefix(n)
            } else {
                Name::Key(n)
            }
        });
        let versioned = self.versions.peek().await?.map(|v| match v {
            Versioned::Version(key, _, _) => Name::Key(key.clone()),
            Versioned::Prefix(p) => Name::Prefix(p.clone()),
        });
        Ok(match (plain, versioned) {
            (Some(a), Some(b)) => Some(if a.as_str() <= b.as_str() { a } else { b }),
            (a, b) => a.or(b),
        })
    }
}

impl Walk for CurrentWalk<'_> {
    type Entry = Current;

    /// A key's entry takes all its versions: the page is used up when the versions left in
    /// it are all of the key next (more of them may be on the next page).
    fn page_used_up(&self) -> bool {
        let cursor = &self.versions.cursor;
        if cursor.exhausted || cursor.jumped {
            return false;
        }
        let key_of = |item: &BackendItem| match item {
            BackendItem::Object(o) => layout::parse_version_name(&o.name).map(|(k, _)| k),
            BackendItem::Prefix(_) => None,
        };
        let next = match &self.versions.next {
            Some(Versioned::Version(key, _, _)) => Some(key.clone()),
            Some(Versioned::Prefix(_)) => return false,
            None => cursor.buffer.front().and_then(key_of),
        };
        match cursor.buffer.back() {
            None => true,
            Some(last) => next.is_some() && key_of(last) == next,
        }
    }

    fn cursors(&mut self) -> [&mut dyn Reading; 2] {
        [&mut self.plain.cursor, &mut self.versions.cursor]
    }

    async fn next(&mut self) -> Result<Option<Listed<Current>>, GatewayError> {
        loop {
            let Some(name) = self.next_name().await? else {
                return Ok(None);
            };
            let from_plain = self
                .plain
                .peek()
                .await?
                .filter(|(n, _)| *n == name.as_str())
                .map(|(_, only_reserved)| only_reserved);
            let from_versions = matches!(
                self.versions.peek().await?,
                Some(Versioned::Version(k, _, _) | Versioned::Prefix(k)) if k == name.as_str()
            );
            let plain = if from_plain.is_some() {
                self.plain.pop()
            } else {
                None
            };
            let latest = if from_versions {
                self.take_key_versions().await?
            } else {
                None
            };
            if self.after.as_deref().is_some_and(|a| name.as_str() <= a) {
                continue;
            }
            let item = match name {
                Name::Prefix(p) => {
                    let look = from_versions || from_plain == Some(true);
                    if look && !self.has_current_under(&p).await? {
                        continue;
                    }
                    Listed::Prefix(p)
                }
                Name::Key(key) => match (latest, plain) {
                    (Some(Versioned::Version(_, id, _)), _) if id.kind() == Kind::DeleteMarker => {
                        continue;
                    }
                    (Some(Versioned::Version(_, id, object)), _) => Listed::Entry(Current {
                        key,
                        version: Some(id),
                        object,
                    }),
                    (_, Some(Plain::Object(_, object))) => Listed::Entry(Current {
                        key,
                        version: None,
                        object,
                    }),
                    _ => continue,
                },
            };
            self.after = Some(item.name().to_owned());
            return Ok(Some(item));
        }
    }
}

impl CurrentWalk<'_> {
    /// Pops the versions stream's next entry; for a key, also the older versions of that key,
    /// returning the latest.
    async fn take_key_versions(&mut self) -> Result<Option<Versioned>, GatewayError> {
        let first = self.versions.pop();
        if let Some(Versioned::Version(key, _, _)) = &first {
            while let Some(Versioned::Version(k, _, _)) = self.versions.peek().await? {
                if k != key {
                    break;
                }
                self.versions.pop();
            }
        }
        Ok(first)
    }

    /// Whether a current key lies under `prefix` (its versions may all be deleted, or its plain
    /// names all the gateway's).
    async fn has_current_under(&self, prefix: &str) -> Result<bool, GatewayError> {
        let request = ListRequest {
            prefix: prefix.to_owned(),
            delimiter: None,
            max_keys: 1,
            backend_page: self.page,
        };
        let mut walk = CurrentWalk::new(self.lister, &request, None);
        Ok(Box::pin(walk.next()).await?.is_some())
    }
}

/// An entry of ListObjectVersions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    /// `None` for the `null` version.
    pub version: Option<VersionId>,
    pub is_latest: bool,
    pub object: BackendObject,
}

impl Version {
    #[must_use]
    pub fn is_delete_marker(&self) -> bool {
        self.version
            .as_ref()
            .is_some_and(|v| v.kind() == Kind::DeleteMarker)
    }
}

/// Where a ListObjectVersions page starts: after `key` (all of it), or after one of its
/// versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionsAfter {
    Start,
    Key(String),
    /// After this version of the key; the key's `null` version, if any, still follows.
    Version(String, VersionId),
}

/// ListObjectVersions after `after`.
///
/// # Errors
/// The backend's listing failed.
pub async fn list_versions(
    lister: &dyn Lister,
    request: &ListRequest,
    after: &VersionsAfter,
) -> Result<ListPage<Version>, GatewayError> {
    if request.hides_everything() {
        return Ok(ListPage {
            items: Vec::new(),
            truncated: false,
            plain_done: true,
        });
    }
    let page = request.backend_page.max(1);
    let delimiter = request.delimiter();
    let (plain_after, versions_after) = match after {
        VersionsAfter::Start => (None, None),
        VersionsAfter::Key(k) => (Some(k.clone()), Some(layout::after_versions_of(k))),
        // The key's own `null` version is still to come: the plain names start just before
        // the key.
        VersionsAfter::Version(k, id) => (before(k), Some(layout::version_name(k, id))),
    };
    let mut walk = VersionWalk {
        plain: PlainStream::new(lister, &request.prefix, delimiter, plain_after, page),
        versions: VersionStream::new(lister, &request.prefix, delimiter, versions_after, page),
        after: after.clone(),
        latest_given: match after {
            VersionsAfter::Version(k, _) => Some(k.clone()),
            _ => None,
        },
        last_prefix: None,
    };
    fill(&mut walk, request.max_keys).await
}

/// A name just before `key` in byte order, or `None` (from the start) for the smallest keys:
/// the key less its last character, whose extensions before `key` are skipped as they come.
fn before(key: &str) -> Option<String> {
    let mut chars = key.chars();
    chars.next_back()?;
    let shorter = chars.as_str();
    (!shorter.is_empty()).then(|| shorter.to_owned())
}

struct VersionWalk<'a> {
    plain: PlainStream<'a>,
    versions: VersionStream<'a>,
    after: VersionsAfter,
    /// The key whose latest version was given (on this page or an earlier one).
    latest_given: Option<String>,
    /// The common prefix given last.
    last_prefix: Option<String>,
}

impl Walk for VersionWalk<'_> {
    type Entry = Version;

    fn page_used_up(&self) -> bool {
        self.versions.next.is_none() && self.versions.cursor.used_up()
    }

    fn cursors(&mut self) -> [&mut dyn Reading; 2] {
        [&mut self.plain.cursor, &mut self.versions.cursor]
    }

    /// The next entry: of equal names, the versions folder's first (a key's versions come
    /// before its `null` version, which is the oldest).
    async fn next(&mut self) -> Result<Option<Listed<Version>>, GatewayError> {
        loop {
            let plain = self.plain.peek().await?.map(|(n, r)| (n.to_owned(), r));
            let plain_is_prefix = matches!(
                self.plain.cursor.buffer.front(),
                Some(BackendItem::Prefix(_))
            );
            let versioned = match self.versions.peek().await? {
                Some(Versioned::Version(k, _, _)) => Some((k.clone(), false)),
                Some(Versioned::Prefix(p)) => Some((p.clone(), true)),
                None => None,
            };
            let from_versions = match (&plain, &versioned) {
                (Some((p, _)), Some((v, _))) => v <= p,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if from_versions {
                let Some((name, is_prefix)) = versioned else {
                    return Ok(None);
                };
                let entry = self.versions.pop();
                if is_prefix {
                    if plain.as_ref().is_some_and(|(p, _)| *p == name) {
                        self.plain.pop();
                    }
                    if self.is_done(&name) {
                        continue;
                    }
                    self.last_prefix = Some(name.clone());
                    return Ok(Some(Listed::Prefix(name)));
                }
                let Some(Versioned::Version(key, id, object)) = entry else {
                    continue;
                };
                if self.is_done(&key) {
                    continue;
                }
                return Ok(Some(self.entry(key, Some(id), object)));
            }
            let Some((name, only_reserved)) = plain else {
                return Ok(None);
            };
            let popped = self.plain.pop();
            if self.is_done(&name) {
                continue;
            }
            if plain_is_prefix {
                if only_reserved && !self.has_plain_key_under(&name).await? {
                    continue;
                }
                self.last_prefix = Some(name.clone());
                return Ok(Some(Listed::Prefix(name)));
            }
            if let Some(Plain::Object(key, object)) = popped {
                return Ok(Some(self.entry(key, None, object)));
            }
        }
    }
}

impl VersionWalk<'_> {
    fn entry(
        &mut self,
        key: String,
        version: Option<VersionId>,
        object: BackendObject,
    ) -> Listed<Version> {
        let is_latest = self.latest_given.as_deref() != Some(key.as_str());
        self.latest_given = Some(key.clone());
        Listed::Entry(Version {
            key,
            version,
            is_latest,
            object,
        })
    }

    /// Whether `name` was given on an earlier page, or just now.
    fn is_done(&self, name: &str) -> bool {
        if self.last_prefix.as_deref() == Some(name) {
            return true;
        }
        match &self.after {
            VersionsAfter::Start => false,
            VersionsAfter::Key(k) => name <= k.as_str(),
            VersionsAfter::Version(k, _) => name < k.as_str(),
        }
    }

    async fn has_plain_key_under(&self, prefix: &str) -> Result<bool, GatewayError> {
        let mut stream = PlainStream::new(self.plain.cursor.lister, prefix, None, None, 1);
        Ok(stream.peek().await?.is_some())
    }
}
