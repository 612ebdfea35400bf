//! Kafka's ACL model and authorizer, with the rules of Kafka's
//! `StandardAuthorizer`:
//!
//! 1. A super user may do anything.
//! 2. The ACLs that apply to a resource are those on its exact name
//!    (LITERAL), on the wildcard `*` (LITERAL) and on any PREFIXED name the
//!    resource's name starts with; of those, an entry applies to a request
//!    when its principal is the caller's or `User:*`, its host the
//!    caller's IP or `*`, and its operation the one asked for or `ALL`.
//!    READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//!    DESCRIBE_CONFIGS (ALLOW entries only).
//! 3. A DENY that applies wins; otherwise an ALLOW that applies allows.
//! 4. When no ACL at all names the resource, the answer is
//!    `allow-everyone-if-no-acl-found`.
//!
//! # File
//!
//! `<data-dir>/meta/acls.json`, replaced atomically on every change: a
//! JSON array of bindings, each `{"resource_type": "TOPIC", "name": "t",
//! "pattern_type": "LITERAL", "principal": "User:alice", "host": "*",
//! "operation": "READ", "permission": "ALLOW"}` (Kafka's enum names).
//!
//! # Lock
//!
//! One std `RwLock` over the bindings: read for every decision (a scan;
//! ACL lists are small), written by Create/DeleteAcls together with the
//! file write; never held across an await.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::Principal;
use crate::config::Config;

macro_rules! kafka_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
            pub fn from_name(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                $name::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown {}", s)))
            }
        }
    };
}

kafka_enum! {
    /// Kafka's `ResourceType` (ANY = 1 is only a filter value).
    ResourceType {
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
}

kafka_enum! {
    /// Kafka's `PatternType` (ANY and MATCH are only filter values).
    PatternType {
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
}

kafka_enum! {
    /// Kafka's `AclOperation` (ANY is only a filter value).
    Operation {
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
}

kafka_enum! {
    /// Kafka's `AclPermissionType` (ANY is only a filter value).
    Permission {
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
}

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

impl ResourceType {
    /// The operations Kafka allows in ACLs on this type
    /// (`AclEntry.supportedOperations`), which are also the bits of the
    /// `*_authorized_operations` fields.
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Any => &[],
        }
    }
}

/// One ACL: a resource pattern and an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Kafka's checks on a new ACL (`AclControlManager.validateNewAcl`);
    /// the message goes back with INVALID_REQUEST.
    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.resource_type, ResourceType::Any) {
            return Err("Invalid resourceType ANY".into());
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(format!("Invalid patternType {}", self.pattern_type.name()));
        }
        if matches!(self.operation, Operation::Any) {
            return Err("Invalid operation ANY".into());
        }
        if matches!(self.permission, Permission::Any) {
            return Err("Invalid permissionType ANY".into());
        }
        if self.name.is_empty() {
            return Err("Resource name should not be empty".into());
        }
        if Principal::parse(&self.principal).is_none() {
            return Err(format!("Could not parse principal {}", self.principal));
        }
        if self.host.is_empty() {
            return Err("Host should not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        if self.operation != Operation::All
            && !self.resource_type.operations().contains(&self.operation)
        {
            return Err(format!(
                "ACL operation {} is not supported for resource type {}",
                self.operation.name(),
                self.resource_type.name()
            ));
        }
        Ok(())
    }

    /// Whether this ACL's pattern covers the resource `name` of `kind`.
    fn covers(&self, kind: ResourceType, name: &str) -> bool {
        self.resource_type == kind
            && match self.pattern_type {
                PatternType::Literal => self.name == name || self.name == "*",
                PatternType::Prefixed => name.starts_with(&self.name),
                _ => false,
            }
    }
}

/// A Describe/DeleteAcls filter, Kafka's `AclBindingFilter`.
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// From the request's codes; `None` (INVALID_REQUEST) if any is
    /// unknown.
    pub fn from_codes(
        resource_type: i8,
        name: Option<String>,
        pattern_type: i8,
        principal: Option<String>,
        host: Option<String>,
        operation: i8,
        permission: i8,
    ) -> Option<AclFilter> {
        Some(AclFilter {
            resource_type: ResourceType::from_code(resource_type)?,
            name,
            pattern_type: PatternType::from_code(pattern_type)?,
            principal,
            host,
            operation: Operation::from_code(operation)?,
            permission: Permission::from_code(permission)?,
        })
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let type_ok =
            self.resource_type == ResourceType::Any || self.resource_type == acl.resource_type;
        let pattern_ok = match self.pattern_type {
            PatternType::Any => self.name.as_ref().is_none_or(|n| *n == acl.name),
            PatternType::Match => match &self.name {
                None => true,
                Some(n) => match acl.pattern_type {
                    PatternType::Literal => acl.name == *n || acl.name == "*",
                    PatternType::Prefixed => n.starts_with(&acl.name),
                    _ => false,
                },
            },
            exact => exact == acl.pattern_type && self.name.as_ref().is_none_or(|n| *n == acl.name),
        };
        type_ok
            && pattern_ok
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == Operation::Any || self.operation == acl.operation)
            && (self.permission == Permission::Any || self.permission == acl.permission)
    }
}

/// Who asks: the principal and the client's address.
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub host: IpAddr,
}

/// The ACL authorizer (`authorizer = "acl"`).
pub struct Authorizer {
    path: PathBuf,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    acls: RwLock<Vec<AclBinding>>,
}

impl Authorizer {
    pub fn open(meta: &Path, config: &Config) -> io::Result<Authorizer> {
        let path = meta.join("acls.json");
        let acls = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Authorizer {
            path,
            super_users: config.super_users.clone(),
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            acls: RwLock::new(acls),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<AclBinding>> {
        self.acls.read().unwrap_or_else(|e| e.into_inner())
    }

    fn is_super(&self, caller: &Caller) -> bool {
        self.super_users
            .iter()
            .any(|s| s == caller.principal.as_str())
    }

    fn applies_to(acl: &AclBinding, caller: &Caller, host: &str) -> bool {
        (acl.principal == caller.principal.as_str() || acl.principal == "User:*")
            && (acl.host == "*" || acl.host == host)
    }

    /// Whether `caller` may perform `op` on the resource `name` of `kind`.
    pub fn authorize(
        &self,
        caller: &Caller,
        op: Operation,
        kind: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super(caller) {
            return true;
        }
        let host = caller.host.to_string();
        let acls = self.read();
        let mut any_acl = false;
        let mut allowed = false;
        for acl in acls.iter().filter(|a| a.covers(kind, name)) {
            any_acl = true;
            if !Self::applies_to(acl, caller, &host) {
                continue;
            }
            let exact = acl.operation == op || acl.operation == Operation::All;
            match acl.permission {
                Permission::Deny if exact => return false,
                Permission::Allow if exact || implies(acl.operation, op) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_acl && self.allow_if_no_acl)
    }

    /// Kafka's `authorizeByResourceType`: whether some resource of `kind`
    /// allows `op` to `caller` (KIP-679: WRITE on any topic lets a
    /// producer be idempotent).
    pub fn authorize_any(&self, caller: &Caller, op: Operation, kind: ResourceType) -> bool {
        if self.is_super(caller) {
            return true;
        }
        let host = caller.host.to_string();
        let acls = self.read();
        let of_kind: Vec<&AclBinding> = acls.iter().filter(|a| a.resource_type == kind).collect();
        if of_kind.is_empty() {
            return self.allow_if_no_acl;
        }
        let applies = |a: &&&AclBinding| {
            Self::applies_to(a, caller, &host)
                && (a.operation == op || a.operation == Operation::All)
        };
        let denied_everywhere = of_kind.iter().filter(applies).any(|a| {
            a.permission == Permission::Deny
                && a.pattern_type == PatternType::Literal
                && a.name == "*"
        });
        !denied_everywhere
            && of_kind
                .iter()
                .filter(applies)
                .any(|a| a.permission == Permission::Allow && !self.denied(a, caller, op))
    }

    /// Whether a DENY covering `allow`'s resource applies to `caller`.
    fn denied(&self, allow: &AclBinding, caller: &Caller, op: Operation) -> bool {
        allow.pattern_type == PatternType::Literal
            && !self.authorize(caller, op, allow.resource_type, &allow.name)
    }

    /// The `*_authorized_operations` bit field of `caller` on a resource.
    pub fn authorized_operations(&self, caller: &Caller, kind: ResourceType, name: &str) -> i32 {
        kind.operations()
            .iter()
            .filter(|op| self.authorize(caller, **op, kind, name))
            .fold(0, |bits, op| bits | 1 << op.code())
    }

    /// Adds ACLs (already validated); an existing identical ACL is kept once.
    pub fn create(&self, new: Vec<AclBinding>) -> io::Result<()> {
        let mut acls = self.acls.write().unwrap_or_else(|e| e.into_inner());
        let mut next = acls.clone();
        for acl in new {
            if !next.contains(&acl) {
                next.push(acl);
            }
        }
        self.persist(&next)?;
        *acls = next;
        Ok(())
    }

    /// The ACLs a filter matches.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.read()
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Removes the ACLs each filter matches; per filter, what it removed.
    pub fn delete(&self, filters: &[AclFilter]) -> io::Result<Vec<Vec<AclBinding>>> {
        let mut acls = self.acls.write().unwrap_or_else(|e| e.into_inner());
        let removed: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| acls.iter().filter(|a| f.matches(a)).cloned().collect())
            .collect();
        let next: Vec<AclBinding> = acls
            .iter()
            .filter(|a| !filters.iter().any(|f| f.matches(a)))
            .cloned()
            .collect();
        if next.len() != acls.len() {
            self.persist(&next)?;
            *acls = next;
        }
        Ok(removed)
    }

    fn persist(&self, acls: &[AclBinding]) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(acls).map_err(io::Error::other)?;
        crate::log::manager::write_atomic(&self.path, &bytes)
    }
}

/// Kafka's implied operations: an ALLOW of `granted` also allows `asked`.
fn implies(granted: Operation, asked: Operation) -> bool {
    use Operation::*;
    match asked {
        Describe => matches!(granted, Read | Write | Delete | Alter),
        DescribeConfigs => granted == AlterConfigs,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        kind: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: kind,
            name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn authorizer(dir: &Path, allow_if_none: bool) -> Authorizer {
        let config = Config {
            super_users: vec!["User:admin".into()],
            allow_everyone_if_no_acl_found: allow_if_none,
            ..Config::default()
        };
        Authorizer::open(dir, &config).unwrap()
    }

    #[test]
    fn kafka_rules() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let dir = tempfile::tempdir().unwrap();
        let a = authorizer(dir.path(), false);
        let alice = Principal::user("alice");
        let bob = Principal::user("bob");
        let admin = Principal::user("admin");
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        let who = |p| Caller { principal: p, host };
        // Nothing: denied (allow-everyone-if-no-acl-found = false) except super users.
        assert!(!a.authorize(&who(&alice), Read, Topic, "orders"));
        assert!(a.authorize(&who(&admin), Read, Topic, "orders"));
        a.create(vec![
            acl(Topic, "ord", Prefixed, "User:alice", Write, Allow),
            acl(Topic, "orders-secret", Literal, "User:alice", Write, Deny),
            acl(Topic, "*", Literal, "User:*", Read, Allow),
            acl(Group, "g1", Literal, "User:alice", All, Allow),
        ])
        .unwrap();
        let alice_c = who(&alice);
        assert!(a.authorize(&alice_c, Write, Topic, "orders"));
        assert!(!a.authorize(&alice_c, Write, Topic, "payments"));
        assert!(
            !a.authorize(&alice_c, Write, Topic, "orders-secret"),
            "DENY wins"
        );
        assert!(
            a.authorize(&alice_c, Describe, Topic, "orders"),
            "WRITE implies DESCRIBE"
        );
        assert!(
            a.authorize(&who(&bob), Read, Topic, "anything"),
            "wildcard principal and name"
        );
        assert!(!a.authorize(&who(&bob), Write, Topic, "orders"));
        assert!(a.authorize(&alice_c, Read, Group, "g1"));
        assert!(!a.authorize(&alice_c, Read, Group, "g2"));
        assert!(a.authorize_any(&alice_c, Write, Topic));
        assert!(!a.authorize_any(&who(&bob), Write, Topic));
        // Topic: READ, WRITE, DESCRIBE, ... bits.
        let ops = a.authorized_operations(&alice_c, Topic, "orders");
        assert_eq!(ops, 1 << 3 | 1 << 4 | 1 << 8);
        // A host that does not match.
        let mut remote = acl(Topic, "h", Literal, "User:alice", Write, Allow);
        remote.host = "10.0.0.1".into();
        a.create(vec![remote.clone()]).unwrap();
        assert!(!a.authorize(&alice_c, Write, Topic, "h"));
        remote.host = "127.0.0.1".into();
        a.create(vec![remote]).unwrap();
        assert!(a.authorize(&alice_c, Write, Topic, "h"));
        // Persisted; delete by filter.
        let b = authorizer(dir.path(), false);
        assert_eq!(b.describe(&any_filter()).len(), 6);
        let f = AclFilter {
            resource_type: Topic,
            name: Some("orders".into()),
            pattern_type: Match,
            ..any_filter()
        };
        // Prefixed `ord` and literal `*`, not `orders-secret`.
        assert_eq!(b.describe(&f).len(), 2);
        let removed = b.delete(&[f]).unwrap();
        assert_eq!(removed[0].len(), 2);
        assert!(!b.authorize(&alice_c, Write, Topic, "orders"));
        assert_eq!(
            authorizer(dir.path(), false).describe(&any_filter()).len(),
            4
        );
    }

    #[test]
    fn no_acl_found_default() {
        let dir = tempfile::tempdir().unwrap();
        let a = authorizer(dir.path(), true);
        let alice = Principal::user("alice");
        let c = Caller {
            principal: &alice,
            host: "::1".parse().unwrap(),
        };
        assert!(a.authorize(&c, Operation::Read, ResourceType::Topic, "t"));
        a.create(vec![acl(
            ResourceType::Topic,
            "t",
            PatternType::Literal,
            "User:bob",
            Operation::Read,
            Permission::Allow,
        )])
        .unwrap();
        assert!(!a.authorize(&c, Operation::Read, ResourceType::Topic, "t"));
        assert!(a.authorize(&c, Operation::Read, ResourceType::Topic, "u"));
    }

    #[test]
    fn validation() {
        let ok = acl(
            ResourceType::Cluster,
            CLUSTER_NAME,
            PatternType::Literal,
            "User:a",
            Operation::Alter,
            Permission::Allow,
        );
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.name = "other".into();
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.operation = Operation::Read;
        assert!(bad.validate().unwrap_err().contains("not supported"));
        let mut bad = ok.clone();
        bad.principal = "alice".into();
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.pattern_type = PatternType::Match;
        assert!(bad.validate().is_err());
    }

    fn any_filter() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }
}
