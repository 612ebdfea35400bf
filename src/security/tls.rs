//! TLS of the SSL and SASL_SSL listeners: a rustls server config built
//! once at start-up from PEM files, and the principal of a client
//! certificate.
//!
//! Kafka's default principal builder names an mTLS client by its
//! certificate's subject in RFC 2253 form (`X500Principal.getName()`):
//! most specific RDN first, `CN=client1,O=Weir Test`. The subject is read
//! from the DER of a certificate rustls has already verified against the
//! truststore, with the small reader below (only the path to the subject
//! is walked).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::Config;

/// The certificates of a PEM file (a chain, or CAs); the error names the
/// file. Shared by the broker's listeners and the tools' client.
pub fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no certificate"));
    }
    Ok(certs)
}

/// The certificates of a PEM file as a root store.
pub fn read_roots(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(roots)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{path}: {e}"))
}

/// The TLS config of the broker's TLS listeners, from the `ssl-*` keys.
/// `ssl-client-auth` applies to SSL listeners only: SASL_SSL clients are
/// identified by SASL and never asked for a certificate (Kafka, KIP-684).
pub fn server_config(
    config: &Config,
    protocol: crate::security::SecurityProtocol,
) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = read_certs(&config.ssl_certificate_location)
        .map_err(|e| anyhow::anyhow!("ssl-certificate-location {e}"))?;
    let key =
        read_key(&config.ssl_key_location).map_err(|e| anyhow::anyhow!("ssl-key-location {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let client_auth =
        protocol == crate::security::SecurityProtocol::Ssl && config.ssl_client_auth != "none";
    let builder = if !client_auth {
        builder.with_no_client_auth()
    } else {
        let roots = read_roots(&config.ssl_truststore_location)
            .map_err(|e| anyhow::anyhow!("ssl-truststore-location {e}"))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if config.ssl_client_auth == "requested" {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        builder.with_client_cert_verifier(verifier.build()?)
    };
    let tls = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("ssl-certificate-location / ssl-key-location: {e}"))?;
    Ok(Arc::new(tls))
}

/// The RFC 2253 subject of a DER certificate, `None` if it cannot be read.
pub fn subject_name(der: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
    //   OPTIONAL, serialNumber, signature, issuer, validity, subject, ...
    let (_, cert, _) = der_read(der)?;
    let (_, mut tbs, _) = der_read(cert)?;
    let mut fields = Vec::with_capacity(6);
    while fields.len() < 6 && !tbs.is_empty() {
        let (tag, value, rest) = der_read(tbs)?;
        if !(fields.is_empty() && tag == 0xa0) {
            fields.push(value);
        }
        tbs = rest;
    }
    // serial, signature, issuer, validity, subject
    let subject = *fields.get(4)?;
    let mut rdns = Vec::new();
    let mut set_list = subject;
    while !set_list.is_empty() {
        let (_, mut set, rest) = der_read(set_list)?;
        let mut parts = Vec::new();
        while !set.is_empty() {
            let (_, atv, next) = der_read(set)?;
            let (oid_tag, oid, value_rest) = der_read(atv)?;
            if oid_tag != 0x06 {
                return None;
            }
            let (_, value, _) = der_read(value_rest)?;
            parts.push(format!(
                "{}={}",
                attribute_name(oid),
                escape(&String::from_utf8_lossy(value))
            ));
            set = next;
        }
        rdns.push(parts.join("+"));
        set_list = rest;
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// One DER TLV: (tag, value, rest). Definite lengths only, as DER requires.
fn der_read(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let value = b.get(header..end)?;
    Some((tag, value, &b[end..]))
}

/// RFC 2253 keywords (those Java's X500Principal prints by name); other
/// attributes print as their dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x09] => "STREET".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        _ => dotted_oid(oid),
    }
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut value: u64 = 0;
    for (i, b) in oid.iter().enumerate() {
        value = (value << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let first = (value / 40).min(2);
                parts.push(first);
                parts.push(value - first * 40);
            } else {
                parts.push(value);
            }
            value = 0;
        }
        if i > 32 {
            break;
        }
    }
    parts
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// RFC 2253 escaping of an attribute value.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == v.chars().count() - 1 && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_in_rfc2253_order() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "NL");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Weir, Test");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client1");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_name(cert.der()).as_deref(),
            Some("CN=client1,O=Weir\\, Test,C=NL")
        );
        assert_eq!(subject_name(&cert.der()[..40]), None);
        assert_eq!(subject_name(b""), None);
    }

    #[test]
    fn dotted_oids() {
        // 1.2.840.113549.1.9.1 (emailAddress)
        assert_eq!(
            dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
            "1.2.840.113549.1.9.1"
        );
    }
}
