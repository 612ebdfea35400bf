"""Test certificates for the TLS and mTLS tests (compat/test_security.py).

`write_pki(directory)` makes, in `directory`:

- a test CA (`ca.pem`) and a server certificate for 127.0.0.1 / localhost
  signed by it (`server-chain.pem`: server certificate first, then the CA;
  `server-key.pem`: PKCS#8 RSA), plus the same server identity with keys in
  the other PEM encodings the broker accepts (PKCS#1 RSA, SEC1 EC);
- a client certificate signed by the CA, subject O=Weir Test, CN=client1
  (principal `User:CN=client1,O=Weir Test` in RFC 2253 order);
- a second, untrusted CA (`rogue-ca.pem`) with a client certificate of the
  very same subject, so a broker that skipped verification would hand it
  client1's principal.
"""
import datetime
import ipaddress
import os
from types import SimpleNamespace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Weir Test"),
    x509.NameAttribute(NameOID.COMMON_NAME, "client1"),
])
# Kafka's principal of an mTLS client: the subject in RFC 2253 form, most
# specific RDN first.
CLIENT_PRINCIPAL = "User:CN=client1,O=Weir Test"


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _validity(builder):
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))


def make_ca(common_name):
    key = _rsa()
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Weir Test"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    cert = _validity(builder).sign(key, hashes.SHA256())
    return key, cert


def issue(ca_key, ca_cert, subject, key, *, server_names=None, client=False):
    """A leaf certificate for `key`, signed by the CA. `server_names`: DNS
    names and IP addresses (strings) of a server certificate."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server_names:
        sans = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _validity(builder).sign(ca_key, hashes.SHA256())


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key, fmt):
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def write_pki(directory):
    d = str(directory)
    p = lambda name: os.path.join(d, name)  # noqa: E731
    ca_key, ca = make_ca("Weir Test CA")
    rogue_key, rogue = make_ca("Weir Rogue CA")
    server_subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Weir Test"),
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
    ])
    names = ["localhost", "127.0.0.1"]

    out = SimpleNamespace(dir=d, client_principal=CLIENT_PRINCIPAL)
    out.ca = _write(p("ca.pem"), _pem(ca))
    out.rogue_ca = _write(p("rogue-ca.pem"), _pem(rogue))

    # The server identity with each private-key encoding the broker reads.
    out.server = {}
    for fmt_name, key, fmt in [
        ("pkcs8", _rsa(), serialization.PrivateFormat.PKCS8),
        ("pkcs1", _rsa(), serialization.PrivateFormat.TraditionalOpenSSL),
        ("sec1", ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.TraditionalOpenSSL),
    ]:
        cert = issue(ca_key, ca, server_subject, key, server_names=names)
        out.server[fmt_name] = (
            _write(p(f"server-{fmt_name}-chain.pem"), _pem(cert) + _pem(ca)),
            _write(p(f"server-{fmt_name}-key.pem"), _key_pem(key, fmt)),
        )
    out.server_chain, out.server_key = out.server["pkcs8"]

    client_key = _rsa()
    out.client_cert = _write(p("client1.pem"), _pem(issue(ca_key, ca, CLIENT_SUBJECT, client_key, client=True)))
    out.client_key = _write(p("client1-key.pem"), _key_pem(client_key, serialization.PrivateFormat.PKCS8))

    rogue_client_key = _rsa()
    out.rogue_client_cert = _write(
        p("rogue-client1.pem"), _pem(issue(rogue_key, rogue, CLIENT_SUBJECT, rogue_client_key, client=True))
    )
    out.rogue_client_key = _write(
        p("rogue-client1-key.pem"), _key_pem(rogue_client_key, serialization.PrivateFormat.PKCS8)
    )
    return out
