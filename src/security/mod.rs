//! Security: who a connection is (TLS, SASL) and what it may do (ACLs).
//!
//! - [`tls`]: rustls server configs of the SSL / SASL_SSL listeners from
//!   PEM files, and the mTLS principal (the client certificate's subject).
//! - [`sasl`]: the per-connection SASL state machine (SaslHandshake,
//!   SaslAuthenticate, KIP-152 framing, raw v0 tokens, KIP-368 re-auth) and
//!   the PLAIN mechanism.
//! - [`scram`]: SCRAM-SHA-256/512 (RFC 5802): the server side of the
//!   exchange and the durable credential store of
//!   Describe/AlterUserScramCredentials.
//! - [`acl`]: Kafka's ACL model and authorizer (StandardAuthorizer's
//!   rules) with its durable store.
//!
//! A connection's principal is fixed by its listener until it
//! authenticates: `User:ANONYMOUS` on PLAINTEXT and on SSL without a client
//! certificate, the certificate's subject with one, the SASL user after
//! SASL.

pub mod acl;
pub mod sasl;
pub mod scram;
pub mod tls;

use std::fmt;
use std::sync::Arc;

/// The SASL mechanisms Weir implements, in Kafka's spelling.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Compares secrets in time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A listener's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        Some(match s {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// What a connection learns from the listener it arrived on.
#[derive(Debug, Clone)]
pub struct Listener {
    pub protocol: SecurityProtocol,
    /// Enabled SASL mechanisms (empty unless SASL).
    pub mechanisms: Vec<String>,
    /// The bound port: Metadata advertises each client's own listener.
    pub port: u16,
}

/// A Kafka principal, `TYPE:NAME` (`User:alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(Arc<str>);

impl Principal {
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    pub fn user(name: &str) -> Principal {
        Principal(Arc::from(format!("User:{name}")))
    }

    /// `TYPE:NAME` with a non-empty type; the name may contain `:`.
    pub fn parse(s: &str) -> Option<Principal> {
        let (kind, name) = s.split_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Principal(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
