//! How the tools reach a secured broker: Kafka client properties
//! (`--command-config FILE`, as Kafka's tools take them) turned into a TLS
//! connector and SASL credentials.
//!
//! Properties understood: `security.protocol` (PLAINTEXT, SSL,
//! SASL_PLAINTEXT, SASL_SSL), `sasl.mechanism` (or librdkafka's
//! `sasl.mechanisms`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), `sasl.username`
//! and `sasl.password`, or the Java client's `sasl.jaas.config` with
//! `username="..." password="..."`; `ssl.ca.location` (or a PEM
//! `ssl.truststore.location`), `ssl.certificate.location` and
//! `ssl.key.location` for mTLS. Others are ignored, as clients do with
//! properties of other clients.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::security::{tls, SecurityProtocol};

/// A connection's byte stream: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// SASL credentials.
#[derive(Clone)]
pub struct Sasl {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

/// The security settings of every connection a client makes.
#[derive(Clone)]
pub struct ClientSecurity {
    pub protocol: SecurityProtocol,
    pub sasl: Option<Sasl>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientSecurity {
    fn default() -> Self {
        ClientSecurity {
            protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: None,
        }
    }
}

impl ClientSecurity {
    /// From a Java-style properties file.
    pub fn from_file(path: &str) -> Result<ClientSecurity, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        ClientSecurity::from_properties(&text).map_err(|e| format!("{path}: {e}"))
    }

    pub fn from_properties(text: &str) -> Result<ClientSecurity, String> {
        let props: HashMap<&str, &str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .filter_map(|l| {
                let (k, v) = l.split_once(['=', ':'])?;
                Some((k.trim(), v.trim()))
            })
            .collect();
        let get = |k: &str| props.get(k).copied().filter(|v| !v.is_empty());
        let protocol = match get("security.protocol") {
            None => SecurityProtocol::Plaintext,
            Some(p) => SecurityProtocol::parse(&p.to_ascii_uppercase())
                .ok_or_else(|| format!("unknown security.protocol {p}"))?,
        };
        let sasl = if protocol.sasl() {
            let mechanism = get("sasl.mechanism")
                .or_else(|| get("sasl.mechanisms"))
                .unwrap_or("PLAIN")
                .to_ascii_uppercase();
            if !crate::security::MECHANISMS.contains(&mechanism.as_str()) {
                return Err(format!("unsupported sasl.mechanism {mechanism}"));
            }
            let jaas = get("sasl.jaas.config").unwrap_or("");
            let username = get("sasl.username")
                .map(str::to_string)
                .or_else(|| jaas_option(jaas, "username"))
                .ok_or("sasl.username (or sasl.jaas.config) is required")?;
            let password = get("sasl.password")
                .map(str::to_string)
                .or_else(|| jaas_option(jaas, "password"))
                .ok_or("sasl.password (or sasl.jaas.config) is required")?;
            Some(Sasl {
                mechanism,
                username,
                password,
            })
        } else {
            None
        };
        let tls = if protocol.tls() {
            let ca = get("ssl.ca.location")
                .or_else(|| get("ssl.truststore.location"))
                .ok_or("ssl.ca.location (a PEM file of CA certificates) is required")?;
            Some(tls_config(
                ca,
                get("ssl.certificate.location"),
                get("ssl.key.location"),
            )?)
        } else {
            None
        };
        Ok(ClientSecurity {
            protocol,
            sasl,
            tls,
        })
    }

    /// Connects to `addr` (TCP, then TLS when configured).
    pub async fn open(&self, addr: &str) -> std::io::Result<Box<dyn Io>> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_matches(['[', ']']);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await?;
        Ok(Box::new(stream))
    }
}

/// `key="value"` in a JAAS line.
fn jaas_option(jaas: &str, key: &str) -> Option<String> {
    let at = jaas.find(&format!("{key}=\""))? + key.len() + 2;
    let end = jaas[at..].find('"')?;
    Some(jaas[at..at + end].to_string())
}

fn tls_config(
    ca: &str,
    cert: Option<&str>,
    key: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = tls::read_roots(ca)?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let config = match (cert, key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(tls::read_certs(cert)?, tls::read_key(key)?)
            .map_err(|e| e.to_string())?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_and_librdkafka_properties() {
        let java = ClientSecurity::from_properties(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"s3=cret\";\n",
        )
        .unwrap();
        let sasl = java.sasl.unwrap();
        assert_eq!(
            (
                sasl.mechanism.as_str(),
                sasl.username.as_str(),
                sasl.password.as_str()
            ),
            ("SCRAM-SHA-512", "alice", "s3=cret")
        );
        let rdk = ClientSecurity::from_properties(
            "# comment\nsecurity.protocol = sasl_plaintext\nsasl.mechanisms=PLAIN\nsasl.username=bob\nsasl.password=pw\n",
        )
        .unwrap();
        assert_eq!(rdk.sasl.unwrap().username, "bob");
        assert!(ClientSecurity::from_properties("security.protocol=SSL").is_err());
        assert!(ClientSecurity::from_properties("security.protocol=SASL_PLAINTEXT").is_err());
        assert!(ClientSecurity::from_properties("security.protocol=KERBEROS").is_err());
        assert!(ClientSecurity::from_properties("").unwrap().sasl.is_none());
    }
}
