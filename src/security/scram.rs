//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks
//! them: the server side of the exchange and the credential store.
//!
//! # Credentials
//!
//! A credential is what RFC 5802 calls the server's stored data: salt,
//! iteration count, `StoredKey = H(HMAC(SaltedPassword, "Client Key"))`
//! and `ServerKey = HMAC(SaltedPassword, "Server Key")`. The admin client
//! sends `SaltedPassword` (PBKDF2 of the password), never the password;
//! Weir keeps only the two keys, so the file cannot be replayed as a
//! password.
//!
//! # File
//!
//! `<data-dir>/meta/scram-credentials.json`, replaced atomically (temporary
//! file, fsync, rename) on every change:
//! `{"users": {"alice": {"SCRAM-SHA-256": {"iterations": 4096, "salt": b64,
//! "stored_key": b64, "server_key": b64}}}}`.
//!
//! # Lock
//!
//! One std `RwLock` over the map: held for lookups during authentication
//! and for an update plus the file write of an Alter (rare), never across
//! an await.

use std::collections::BTreeMap;
use std::io;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use serde::{Deserialize, Serialize};

/// Kafka's bounds on iterations (`ScramMechanism.minIterations`, and the
/// maximum `ScramCredentialUtils` accepts).
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// A SCRAM mechanism; the codes are Kafka's `ScramMechanism` type bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    pub fn from_code(code: i8) -> Option<Mechanism> {
        match code {
            1 => Some(Mechanism::Sha256),
            2 => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    pub fn code(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac_alg(), key), data)
            .as_ref()
            .to_vec()
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_alg(), data).as_ref().to_vec()
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let alg = match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        };
        let mut out = vec![0; self.digest_alg().output_len()];
        let n = NonZeroU32::new(iterations.max(1)).expect("at least 1");
        pbkdf2::derive(alg, n, salt, password, &mut out);
        out
    }
}

/// The server's stored data for one user and mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub iterations: i32,
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

impl Credential {
    pub fn from_salted_password(
        mechanism: Mechanism,
        salt: &[u8],
        iterations: i32,
        salted_password: &[u8],
    ) -> Credential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Credential {
            iterations,
            salt: salt.to_vec(),
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }
}

mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    users: BTreeMap<String, BTreeMap<String, Credential>>,
}

/// One change of an AlterUserScramCredentials request.
#[derive(Debug)]
pub enum Alteration {
    Upsert {
        user: String,
        mechanism: Mechanism,
        credential: Credential,
    },
    Delete {
        user: String,
        mechanism: Mechanism,
    },
}

/// SCRAM credentials, durable.
pub struct ScramStore {
    path: PathBuf,
    users: RwLock<BTreeMap<String, BTreeMap<String, Credential>>>,
}

impl ScramStore {
    pub fn open(meta: &Path) -> io::Result<ScramStore> {
        let path = meta.join("scram-credentials.json");
        let users = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<File>(&bytes)
                    .map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: {e}", path.display()),
                        )
                    })?
                    .users
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(ScramStore {
            path,
            users: RwLock::new(users),
        })
    }

    pub fn get(&self, user: &str, mechanism: Mechanism) -> Option<Credential> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.get(user)?.get(mechanism.name()).cloned()
    }

    /// Users and their mechanisms with iterations, for Describe.
    pub fn describe(&self) -> BTreeMap<String, Vec<(Mechanism, i32)>> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users
            .iter()
            .map(|(u, creds)| {
                let infos = creds
                    .iter()
                    .filter_map(|(m, c)| Some((Mechanism::from_name(m)?, c.iterations)))
                    .collect();
                (u.clone(), infos)
            })
            .collect()
    }

    /// Whether `user` has a credential for `mechanism`.
    pub fn exists(&self, user: &str, mechanism: Mechanism) -> bool {
        self.get(user, mechanism).is_some()
    }

    /// Applies validated changes and persists them; all or nothing on disk.
    pub fn apply(&self, changes: Vec<Alteration>) -> io::Result<()> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let mut next = users.clone();
        for change in changes {
            match change {
                Alteration::Upsert {
                    user,
                    mechanism,
                    credential,
                } => {
                    next.entry(user)
                        .or_default()
                        .insert(mechanism.name().to_string(), credential);
                }
                Alteration::Delete { user, mechanism } => {
                    if let Some(creds) = next.get_mut(&user) {
                        creds.remove(mechanism.name());
                        if creds.is_empty() {
                            next.remove(&user);
                        }
                    }
                }
            }
        }
        let bytes = serde_json::to_vec_pretty(&File {
            users: next.clone(),
        })
        .map_err(io::Error::other)?;
        crate::log::manager::write_atomic(&self.path, &bytes)?;
        *users = next;
        Ok(())
    }
}

/// Why an exchange failed; the text goes to the client (never a secret).
#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    #[error("Authentication failed: Invalid user credentials")]
    UnknownUser,
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    BadProof(&'static str),
    #[error("Invalid SCRAM message: {0}")]
    Malformed(&'static str),
}

/// The server side of one SCRAM exchange.
pub enum ScramServer {
    /// Waiting for client-first-message.
    Start(Mechanism),
    /// server-first-message sent; waiting for client-final-message.
    Challenged {
        mechanism: Mechanism,
        user: String,
        nonce: String,
        gs2_header: String,
        auth_message_prefix: String,
        credential: Credential,
    },
}

/// What a step produced.
pub enum Step {
    /// Send this and wait for the next message.
    Continue(Vec<u8>),
    /// Authenticated as this user; send the server-final-message.
    Done { user: String, response: Vec<u8> },
}

impl ScramServer {
    pub fn new(mechanism: Mechanism) -> ScramServer {
        ScramServer::Start(mechanism)
    }

    /// One message of the exchange. `lookup` finds a user's credential.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str, Mechanism) -> Option<Credential>,
        rng: &dyn SecureRandom,
    ) -> Result<Step, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        match self {
            ScramServer::Start(mechanism) => {
                let mechanism = *mechanism;
                let first = ClientFirst::parse(text)?;
                let credential = lookup(&first.user, mechanism).ok_or(ScramError::UnknownUser)?;
                let mut raw = [0u8; 24];
                rng.fill(&mut raw)
                    .map_err(|_| ScramError::Malformed("no randomness"))?;
                let nonce = format!("{}{}", first.nonce, B64.encode(raw));
                let server_first = format!(
                    "r={nonce},s={},i={}",
                    B64.encode(&credential.salt),
                    credential.iterations
                );
                let prefix = format!("{},{server_first}", first.bare);
                *self = ScramServer::Challenged {
                    mechanism,
                    user: first.user,
                    nonce,
                    gs2_header: first.gs2_header,
                    auth_message_prefix: prefix,
                    credential,
                };
                Ok(Step::Continue(server_first.into_bytes()))
            }
            ScramServer::Challenged {
                mechanism,
                user,
                nonce,
                gs2_header,
                auth_message_prefix,
                credential,
            } => {
                let (without_proof, proof) = text
                    .rsplit_once(",p=")
                    .ok_or(ScramError::Malformed("client-final-message without proof"))?;
                let mut attrs = without_proof.split(',');
                let binding = attrs
                    .next()
                    .and_then(|a| a.strip_prefix("c="))
                    .ok_or(ScramError::Malformed("channel binding expected"))?;
                let got_nonce = attrs
                    .next()
                    .and_then(|a| a.strip_prefix("r="))
                    .ok_or(ScramError::Malformed("nonce expected"))?;
                if B64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
                    return Err(ScramError::Malformed("channel binding does not match"));
                }
                if got_nonce != nonce {
                    return Err(ScramError::Malformed("nonce does not match"));
                }
                let proof = B64
                    .decode(proof)
                    .map_err(|_| ScramError::Malformed("proof is not base64"))?;
                let auth_message = format!("{auth_message_prefix},{without_proof}");
                let signature = mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
                if proof.len() != signature.len() {
                    return Err(ScramError::BadProof(mechanism.name()));
                }
                let client_key: Vec<u8> =
                    proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
                if !super::constant_time_eq(&mechanism.hash(&client_key), &credential.stored_key) {
                    return Err(ScramError::BadProof(mechanism.name()));
                }
                let server_signature =
                    mechanism.hmac(&credential.server_key, auth_message.as_bytes());
                Ok(Step::Done {
                    user: std::mem::take(user),
                    response: format!("v={}", B64.encode(server_signature)).into_bytes(),
                })
            }
        }
    }
}

/// The client side (for the `weir` tools and tests): the
/// client-final-message answering `server_first`, and the server signature
/// the server-final-message must carry.
pub fn client_final(
    mechanism: Mechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> Result<(String, Vec<u8>), ScramError> {
    let mut nonce = None;
    let mut salt = None;
    let mut iterations = None;
    for attr in server_first.split(',') {
        match attr.split_once('=') {
            Some(("r", v)) => nonce = Some(v),
            Some(("s", v)) => salt = B64.decode(v).ok(),
            Some(("i", v)) => iterations = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
        return Err(ScramError::Malformed("bad server-first-message"));
    };
    if iterations > MAX_ITERATIONS as u32 * 4 {
        return Err(ScramError::Malformed("too many iterations"));
    }
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = mechanism.hmac(&salted, b"Client Key");
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac(&mechanism.hash(&client_key), auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_key = mechanism.hmac(&salted, b"Server Key");
    Ok((
        format!("{without_proof},p={}", B64.encode(proof)),
        mechanism.hmac(&server_key, auth_message.as_bytes()),
    ))
}

/// A client-first-message-bare for `user` (escaped) and `nonce`.
pub fn client_first_bare(user: &str, nonce: &str) -> String {
    format!(
        "n={},r={nonce}",
        user.replace('=', "=3D").replace(',', "=2C")
    )
}

/// A parsed client-first-message.
struct ClientFirst {
    gs2_header: String,
    /// client-first-message-bare (everything after the GS2 header).
    bare: String,
    user: String,
    nonce: String,
}

impl ClientFirst {
    fn parse(text: &str) -> Result<ClientFirst, ScramError> {
        // gs2-header = gs2-cbind-flag "," [ authzid ] ","
        let (flag, rest) = text
            .split_once(',')
            .ok_or(ScramError::Malformed("GS2 header expected"))?;
        if flag != "n" && flag != "y" {
            // "p=..." asks for channel binding, which Kafka does not offer.
            return Err(ScramError::Malformed("channel binding is not supported"));
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("GS2 header expected"))?;
        let gs2_header = format!("{flag},{authzid},");
        let mut attrs = bare.split(',');
        let user = attrs
            .next()
            .and_then(|a| a.strip_prefix("n="))
            .ok_or(ScramError::Malformed("user name expected"))?;
        let user = unescape(user).ok_or(ScramError::Malformed("bad user name escape"))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or(ScramError::Malformed("nonce expected"))?;
        if let Some(authzid) = authzid.strip_prefix("a=") {
            // Kafka: an authorization id must be the authenticated user.
            if unescape(authzid).as_deref() != Some(user.as_str()) {
                return Err(ScramError::Malformed(
                    "authorization id must equal the user name",
                ));
            }
        } else if !authzid.is_empty() {
            return Err(ScramError::Malformed("bad GS2 header"));
        }
        Ok(ClientFirst {
            gs2_header,
            bare: bare.to_string(),
            user,
            nonce: nonce.to_string(),
        })
    }
}

/// RFC 5802 saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is bad.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, with the server's nonce and salt
    /// taken from it: the exact proof and server signature.
    #[test]
    fn rfc7677_example() {
        let m = Mechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let cred = Credential::from_salted_password(m, &salt, 4096, &salted);
        // The server's half of the nonce is fixed by building the state.
        let first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let mut server = ScramServer::Challenged {
            mechanism: m,
            user: "user".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            gs2_header: "n,,".into(),
            auth_message_prefix: format!("{first_bare},{server_first}"),
            credential: cred,
        };
        let final_msg = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        match server
            .step(
                final_msg.as_bytes(),
                |_, _| None,
                &ring::rand::SystemRandom::new(),
            )
            .unwrap()
        {
            Step::Done { user, response } => {
                assert_eq!(user, "user");
                assert_eq!(
                    String::from_utf8(response).unwrap(),
                    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
                );
            }
            Step::Continue(_) => panic!("expected the end of the exchange"),
        }
    }

    fn exchange(m: Mechanism, stored_password: &str, tried: &str) -> Result<String, ScramError> {
        let rng = ring::rand::SystemRandom::new();
        let salt = b"0123456789abcdef";
        let cred = Credential::from_salted_password(
            m,
            salt,
            4096,
            &m.salted_password(stored_password.as_bytes(), salt, 4096),
        );
        let lookup = |u: &str, mm: Mechanism| (u == "a,b=c" && mm == m).then(|| cred.clone());
        let mut server = ScramServer::new(m);
        let bare = &client_first_bare("a,b=c", "clientnonce");
        assert_eq!(bare, "n=a=2Cb=3Dc,r=clientnonce");
        let Step::Continue(first) = server.step(format!("n,,{bare}").as_bytes(), lookup, &rng)?
        else {
            panic!("one step is not enough")
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with("r=clientnonce"), "{first}");
        let (final_msg, expected_v) = client_final(m, tried, bare, &first).unwrap();
        match server.step(final_msg.as_bytes(), |_, _| None, &rng)? {
            Step::Done { user, response } => {
                assert_eq!(
                    response,
                    format!("v={}", B64.encode(expected_v)).into_bytes()
                );
                Ok(user)
            }
            Step::Continue(_) => panic!("two steps"),
        }
    }

    #[test]
    fn both_mechanisms_accept_the_password_and_refuse_others() {
        for m in [Mechanism::Sha256, Mechanism::Sha512] {
            assert_eq!(exchange(m, "secret", "secret").unwrap(), "a,b=c");
            assert!(matches!(
                exchange(m, "secret", "wrong"),
                Err(ScramError::BadProof(_))
            ));
        }
    }

    #[test]
    fn hostile_messages_fail_cleanly() {
        let rng = ring::rand::SystemRandom::new();
        for msg in [
            &b""[..],
            b"n",
            b"p=tls-unique,,n=u,r=x",
            b"n,,r=x",
            b"n,,n=u",
            b"n,,n=u,r=",
            b"n,,n=u=ZZ,r=x",
            b"n,a=other,n=u,r=x",
            b"\xff\xfe",
        ] {
            let mut s = ScramServer::new(Mechanism::Sha256);
            assert!(s.step(msg, |_, _| None, &rng).is_err(), "{msg:?}");
        }
        // Unknown user.
        let mut s = ScramServer::new(Mechanism::Sha256);
        assert!(matches!(
            s.step(b"n,,n=nobody,r=x", |_, _| None, &rng),
            Err(ScramError::UnknownUser)
        ));
    }

    #[test]
    fn store_persists_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ScramStore::open(dir.path()).unwrap();
        let m = Mechanism::Sha512;
        let cred = Credential::from_salted_password(m, b"salt", 8192, &[7; 64]);
        store
            .apply(vec![Alteration::Upsert {
                user: "alice".into(),
                mechanism: m,
                credential: cred.clone(),
            }])
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("scram-credentials.json")).unwrap();
        assert!(!text.contains("BwcH"), "the salted password is not stored");
        let reopened = ScramStore::open(dir.path()).unwrap();
        assert_eq!(reopened.get("alice", m), Some(cred));
        assert_eq!(reopened.describe()["alice"], vec![(m, 8192)]);
        reopened
            .apply(vec![Alteration::Delete {
                user: "alice".into(),
                mechanism: m,
            }])
            .unwrap();
        assert!(ScramStore::open(dir.path()).unwrap().describe().is_empty());
    }
}
