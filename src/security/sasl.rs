//! The SASL state machine of one connection, as Kafka's
//! `SaslServerAuthenticator` runs it:
//!
//! ```text
//!  Start --ApiVersions--> Start
//!  Start --SaslHandshake(mechanism)--> Chosen --SaslAuthenticate*--> Authenticated
//!  Authenticated --SaslHandshake (KIP-368 re-auth)--> Chosen --> Authenticated
//! ```
//!
//! Before the first authentication completes only ApiVersions,
//! SaslHandshake and SaslAuthenticate are processed; anything else closes
//! the connection, as does a failed handshake or authentication (after its
//! error response). A SaslHandshake v0 makes the following tokens raw
//! frames (no Kafka header) instead of SaslAuthenticate requests (KIP-152
//! framing is v1). With `connections-max-reauth-ms` > 0 a session ends
//! after that long: the client must re-authenticate (same principal) on
//! the connection before then, and a request after the end closes it.

use std::time::{Duration, Instant};

use ring::rand::SystemRandom;

use super::scram::{Mechanism as ScramMechanism, ScramServer, ScramStore, Step};
use super::{Listener, Principal};

/// API keys of the SASL requests.
pub const SASL_HANDSHAKE: i16 = 17;
pub const SASL_AUTHENTICATE: i16 = 36;
const API_VERSIONS: i16 = 18;

/// Largest frame before SASL authentication completes (Kafka's
/// `sasl.server.max.receive.size` default): unauthenticated peers cannot
/// make the broker buffer large requests.
pub const MAX_RECEIVE_BEFORE_AUTH: usize = 524_288;

/// What authentication checks against.
pub struct Credentials<'a> {
    pub plain_users: &'a std::collections::BTreeMap<String, String>,
    pub scram: &'a ScramStore,
    pub rng: &'a SystemRandom,
    /// `connections-max-reauth-ms`; 0 = sessions do not end.
    pub reauth_ms: i64,
}

enum Exchange {
    Plain,
    Scram(ScramServer),
}

/// A connection's identity and, on SASL listeners, its SASL progress.
pub struct AuthState {
    principal: Principal,
    sasl: bool,
    /// The mechanism of the (last) handshake.
    mechanism: Option<String>,
    /// Raw tokens (SaslHandshake v0) instead of SaslAuthenticate.
    raw: bool,
    exchange: Option<Exchange>,
    authenticated: bool,
    expires_at: Option<Instant>,
}

/// Why a handshake is refused; the connection closes after the answer.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// UNSUPPORTED_SASL_MECHANISM, with the enabled mechanisms.
    Unsupported,
    /// ILLEGAL_SASL_STATE.
    IllegalState(&'static str),
}

/// A successful authentication step.
#[derive(Debug)]
pub struct Progress {
    /// The token for the client (empty for PLAIN).
    pub response: Vec<u8>,
    /// Set when the exchange completed: the session's lifetime in ms (0 =
    /// unlimited), for SaslAuthenticate v1+.
    pub done: Option<i64>,
}

impl AuthState {
    /// A new connection on `listener`, with the principal its TLS client
    /// certificate gave, if any.
    pub fn new(listener: &Listener, tls_principal: Option<Principal>) -> AuthState {
        AuthState {
            principal: tls_principal.unwrap_or_else(Principal::anonymous),
            sasl: listener.protocol.sasl(),
            mechanism: None,
            raw: false,
            exchange: None,
            authenticated: false,
            expires_at: None,
        }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Whether requests may flow: no SASL on the listener, or the first
    /// authentication completed.
    pub fn authenticated(&self) -> bool {
        !self.sasl || self.authenticated
    }

    /// Whether the next frame is a raw SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        self.raw && self.exchange.is_some()
    }

    /// Whether a request with API `key` may be processed now; the error is
    /// why the connection must close instead.
    pub fn admit(&self, key: i16, now: Instant) -> Result<(), &'static str> {
        if !self.sasl {
            return Ok(());
        }
        match key {
            API_VERSIONS if self.exchange.is_none() => Ok(()),
            SASL_HANDSHAKE if self.exchange.is_none() => Ok(()),
            SASL_AUTHENTICATE if self.exchange.is_some() && !self.raw => Ok(()),
            _ if self.exchange.is_some() => Err("unexpected request during SASL authentication"),
            _ if !self.authenticated => Err("request before SASL authentication"),
            _ if self.expires_at.is_some_and(|t| now >= t) => {
                Err("SASL session expired (connections-max-reauth-ms) without re-authentication")
            }
            _ => Ok(()),
        }
    }

    /// SaslHandshake: picks the mechanism. On a listener without SASL the
    /// answer is ILLEGAL_SASL_STATE, as Kafka's.
    pub fn handshake(
        &mut self,
        mechanism: &str,
        version: i16,
        listener: &Listener,
    ) -> Result<(), HandshakeError> {
        if !self.sasl {
            return Err(HandshakeError::IllegalState(
                "SASL is not enabled on this listener",
            ));
        }
        if !listener.mechanisms.iter().any(|m| m == mechanism) {
            return Err(HandshakeError::Unsupported);
        }
        if self.authenticated && self.mechanism.as_deref() != Some(mechanism) {
            return Err(HandshakeError::IllegalState(
                "the SASL mechanism cannot change on re-authentication",
            ));
        }
        self.exchange = Some(match ScramMechanism::from_name(mechanism) {
            Some(m) => Exchange::Scram(ScramServer::new(m)),
            None => Exchange::Plain,
        });
        self.mechanism = Some(mechanism.to_string());
        self.raw = version == 0;
        Ok(())
    }

    /// One token of the exchange (SaslAuthenticate, or a raw frame). An
    /// error ends the exchange; its text is for the client.
    pub fn authenticate(
        &mut self,
        token: &[u8],
        creds: &Credentials,
        now: Instant,
    ) -> Result<Progress, String> {
        let Some(exchange) = self.exchange.as_mut() else {
            return Err("SaslAuthenticate without a SaslHandshake".into());
        };
        let user = match exchange {
            Exchange::Plain => plain(token, creds.plain_users),
            Exchange::Scram(server) => {
                match server.step(token, |u, m| creds.scram.get(u, m), creds.rng) {
                    Ok(Step::Continue(response)) => {
                        return Ok(Progress {
                            response,
                            done: None,
                        })
                    }
                    Ok(Step::Done { user, response }) => Ok((user, response)),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        self.exchange = None;
        let (user, response) = user?;
        let principal = Principal::user(&user);
        if self.authenticated && principal != self.principal {
            return Err("Cannot change principals during re-authentication".into());
        }
        self.principal = principal;
        self.authenticated = true;
        self.expires_at =
            (creds.reauth_ms > 0).then(|| now + Duration::from_millis(creds.reauth_ms as u64));
        Ok(Progress {
            response,
            done: Some(creds.reauth_ms.max(0)),
        })
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`, checked against
/// `[sasl-plain-users]`; Kafka's messages.
fn plain(
    token: &[u8],
    users: &std::collections::BTreeMap<String, String>,
) -> Result<(String, Vec<u8>), String> {
    let text = std::str::from_utf8(token)
        .map_err(|_| "Invalid SASL/PLAIN response: not UTF-8".to_string())?;
    let parts: Vec<&str> = text.split('\0').collect();
    let [authzid, user, password] = parts[..] else {
        return Err("Invalid SASL/PLAIN response: expected 3 tokens".into());
    };
    if user.is_empty() {
        return Err("Authentication failed: username not specified".into());
    }
    if password.is_empty() {
        return Err("Authentication failed: password not specified".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err(
            "Authentication failed: Client requested an authorization id that is different from username"
                .into(),
        );
    }
    let ok = users
        .get(user)
        .is_some_and(|expected| super::constant_time_eq(expected.as_bytes(), password.as_bytes()));
    if !ok {
        return Err("Authentication failed: Invalid username or password".into());
    }
    Ok((user.to_string(), Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::SecurityProtocol;

    fn listener() -> Listener {
        Listener {
            protocol: SecurityProtocol::SaslPlaintext,
            mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
            port: 9094,
        }
    }

    #[test]
    fn plain_state_machine_and_reauth() {
        let dir = tempfile::tempdir().unwrap();
        let scram = ScramStore::open(dir.path()).unwrap();
        let users = [("alice".to_string(), "pw".to_string())]
            .into_iter()
            .collect();
        let rng = SystemRandom::new();
        let creds = Credentials {
            plain_users: &users,
            scram: &scram,
            rng: &rng,
            reauth_ms: 1000,
        };
        let l = listener();
        let mut s = AuthState::new(&l, None);
        let t0 = Instant::now();
        assert!(s.admit(API_VERSIONS, t0).is_ok());
        assert!(s.admit(3, t0).is_err(), "Metadata before authentication");
        assert!(s.admit(SASL_AUTHENTICATE, t0).is_err());
        assert_eq!(
            s.handshake("GSSAPI", 1, &l),
            Err(HandshakeError::Unsupported)
        );
        s.handshake("PLAIN", 1, &l).unwrap();
        assert!(s.admit(SASL_HANDSHAKE, t0).is_err());
        assert!(s.admit(3, t0).is_err());
        let p = s.authenticate(b"\0alice\0pw", &creds, t0).unwrap();
        assert_eq!(p.done, Some(1000));
        assert_eq!(s.principal().as_str(), "User:alice");
        assert!(s.admit(3, t0).is_ok());
        let later = t0 + Duration::from_millis(1500);
        assert!(s.admit(3, later).is_err(), "session over");
        // Re-authentication: same mechanism and principal.
        assert!(s.admit(SASL_HANDSHAKE, later).is_ok());
        assert!(matches!(
            s.handshake("SCRAM-SHA-256", 1, &l),
            Err(HandshakeError::IllegalState(_))
        ));
        s.handshake("PLAIN", 1, &l).unwrap();
        s.authenticate(b"alice\0alice\0pw", &creds, later).unwrap();
        assert!(s.admit(3, later).is_ok());
        s.handshake("PLAIN", 1, &l).unwrap();
        let users2 = [("bob".to_string(), "x".to_string())].into_iter().collect();
        let creds2 = Credentials {
            plain_users: &users2,
            ..creds
        };
        assert!(s
            .authenticate(b"\0bob\0x", &creds2, later)
            .unwrap_err()
            .contains("change principals"));
    }

    #[test]
    fn plain_refusals() {
        let users = [("alice".to_string(), "pw".to_string())]
            .into_iter()
            .collect();
        for bad in [
            &b"\0alice\0wrong"[..],
            b"\0alice\0",
            b"\0\0pw",
            b"bob\0alice\0pw",
            b"alice\0pw",
            b"\0nobody\0pw",
            b"\0alice\0pw\0extra",
            b"\xff\0alice\0pw",
        ] {
            assert!(plain(bad, &users).is_err(), "{bad:?}");
        }
        assert_eq!(plain(b"\0alice\0pw", &users).unwrap().0, "alice");
    }

    #[test]
    fn non_sasl_listener_refuses_handshake() {
        let l = Listener {
            protocol: SecurityProtocol::Plaintext,
            mechanisms: vec![],
            port: 9092,
        };
        let mut s = AuthState::new(&l, None);
        assert!(s.admit(3, Instant::now()).is_ok());
        assert!(matches!(
            s.handshake("PLAIN", 1, &l),
            Err(HandshakeError::IllegalState(_))
        ));
        assert_eq!(s.principal().as_str(), "User:ANONYMOUS");
    }
}
