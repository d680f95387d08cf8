//! What a user may do. Least privilege: a user has exactly the permissions the config names.

use serde::{Deserialize, Serialize};

/// One right a user can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// GET, HEAD and listings, and reading lock state.
    Read,
    /// Uploads (with or without lock headers), deletes that destroy nothing protected, tags.
    Write,
    /// PutObjectRetention that sets or lengthens a retention.
    ExtendRetention,
    /// Shorten or remove a GOVERNANCE retention, or delete a GOVERNANCE version, with the
    /// `x-amz-bypass-governance-retention: true` header. Never touches COMPLIANCE.
    BypassGovernance,
    /// Place or lift a legal hold.
    LegalHold,
    /// Bucket settings: lock configuration, versioning, lifecycle, policies, deleting buckets.
    Admin,
}

impl Permission {
    pub const ALL: [Self; 6] = [
        Self::Read,
        Self::Write,
        Self::ExtendRetention,
        Self::BypassGovernance,
        Self::LegalHold,
        Self::Admin,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::ExtendRetention => "extend-retention",
            Self::BypassGovernance => "bypass-governance",
            Self::LegalHold => "legal-hold",
            Self::Admin => "admin",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// An ordinary backup agent: read, write (locks included) and extend retention. No bypass,
    /// no legal holds, no bucket settings.
    pub const BACKUP: Self = Self::of(&[
        Permission::Read,
        Permission::Write,
        Permission::ExtendRetention,
    ]);

    /// Every permission.
    pub const ALL: Self = Self::of(&Permission::ALL);

    #[must_use]
    pub const fn of(list: &[Permission]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < list.len() {
            bits |= list[i].bit();
            i += 1;
        }
        Self(bits)
    }

    #[must_use]
    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    #[must_use]
    pub fn with(self, p: Permission) -> Self {
        Self(self.0 | p.bit())
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.has(*p))
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::default(), Self::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_backup_is_least_privilege() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        let backup: Vec<_> = Permissions::BACKUP.iter().collect();
        assert_eq!(
            backup,
            [
                Permission::Read,
                Permission::Write,
                Permission::ExtendRetention
            ]
        );
        assert!(!Permissions::BACKUP.has(Permission::BypassGovernance));
        assert!(Permissions::ALL.has(Permission::Admin));
    }
}
