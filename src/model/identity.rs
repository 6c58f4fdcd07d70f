//! Who did something: the identity behind an API request, as the audit log's
//! `actor` and `approved_by` name it (DESIGN.md §4a). Identities come from API
//! tokens, never from a request parameter. Pure data: how a token maps to an
//! identity is the server's business.
use serde::{Deserialize, Serialize};

/// What an identity may do. `read` covers every GET; `admin` covers all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Read,
    Approve,
    Silence,
    Operate,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Read,
        Role::Approve,
        Role::Silence,
        Role::Operate,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Approve => "approve",
            Role::Silence => "silence",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }

    /// The role named `s` as written in config (`approve`, `@approve` is the
    /// caller's business).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named identity with its roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The token's name; the audit log's actor.
    pub name: String,
    pub roles: Vec<Role>,
}

impl Identity {
    /// The name loopback requests carry when no token is configured.
    pub const LOCAL: &'static str = "local";

    pub fn new(name: impl Into<String>, roles: impl IntoIterator<Item = Role>) -> Self {
        let mut roles: Vec<Role> = roles.into_iter().collect();
        roles.sort();
        roles.dedup();
        Identity {
            name: name.into(),
            roles,
        }
    }

    /// Loopback mode without tokens: every role.
    pub fn local() -> Self {
        Identity::new(Identity::LOCAL, [Role::Admin])
    }

    /// Whether this identity may act in `role`: it holds it, or `admin`;
    /// every identity may read.
    pub fn may(&self, role: Role) -> bool {
        role == Role::Read || self.roles.contains(&Role::Admin) || self.roles.contains(&role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_may_everything_others_only_their_roles_and_read() {
        let local = Identity::local();
        assert!(Role::ALL.iter().all(|r| local.may(*r)));
        let alice = Identity::new("alice", [Role::Approve, Role::Approve]);
        assert_eq!(alice.roles, vec![Role::Approve]);
        assert!(alice.may(Role::Read) && alice.may(Role::Approve));
        assert!(!alice.may(Role::Silence) && !alice.may(Role::Operate) && !alice.may(Role::Admin));
        assert_eq!(Role::parse("silence"), Some(Role::Silence));
        assert_eq!(Role::parse("root"), None);
    }
}
