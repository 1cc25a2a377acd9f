//! The stack's private PKI with rcgen: a CA, one server certificate per service and one client
//! certificate per login. Pure: parameters in, PEM out; nothing here reads or writes files.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, SignatureAlgorithm,
};
use time::OffsetDateTime;

use crate::profile::KeyAlgorithm;
use crate::secrets::Secret;

/// The stack's certificate authority, able to sign.
pub struct Ca {
    certificate: Certificate,
    key: KeyPair,
    /// The CA certificate as it is on disk (re-signing for rcgen's issuer handle changes bytes,
    /// so the original PEM is kept).
    pub cert_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("key", &"[redacted]").finish()
    }
}

impl Ca {
    /// The CA key in PEM.
    pub fn key_pem(&self) -> Secret {
        Secret::new(self.key.serialize_pem())
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A server: `serverAuth`, with these subject alternative names.
    Server { sans: Vec<String> },
    /// A client login: `clientAuth`; the CN is the login name.
    Client,
    /// A peer of a cluster (Qdrant's): `serverAuth` and `clientAuth`, since each peer presents
    /// it both ways, with these subject alternative names.
    Peer { sans: Vec<String> },
}

/// A certificate to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Common name: the service's network alias, or the user name of a client certificate.
    pub common_name: String,
    /// Server or client.
    pub purpose: Purpose,
    /// Validity from now.
    pub lifetime: Duration,
}

/// An issued certificate and its key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: Secret,
}

fn signature_algorithm(algorithm: KeyAlgorithm) -> &'static SignatureAlgorithm {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
    }
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    // Backdate a little so a peer whose clock is slightly behind accepts a fresh certificate.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + lifetime;
    let serial: [u8; 16] = rand::random();
    let mut serial = serial.to_vec();
    serial[0] &= 0x7f; // positive, as RFC 5280 asks
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

/// Creates a new CA named after the stack.
pub fn create_ca(stack_name: &str, algorithm: KeyAlgorithm, lifetime: Duration) -> anyhow::Result<Ca> {
    let key = KeyPair::generate_for(signature_algorithm(algorithm)).context("generating the CA key")?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "hardstack");
    name.push(DnType::CommonName, format!("{stack_name} CA"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, lifetime);
    let certificate = params.self_signed(&key).context("self-signing the CA")?;
    let cert_pem = certificate.pem();
    Ok(Ca { certificate, key, cert_pem })
}

/// Loads an existing CA from its PEM files, to issue more certificates under it.
pub fn load_ca(cert_pem: &str, key_pem: &Secret) -> anyhow::Result<Ca> {
    let key = KeyPair::from_pem(key_pem.expose()).context("reading the CA key")?;
    let params = CertificateParams::from_ca_cert_pem(cert_pem).context("reading the CA certificate")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).context("reading the CA certificate")?;
    let parsed = pem.parse_x509().context("reading the CA certificate")?;
    anyhow::ensure!(
        parsed.public_key().raw == key.public_key_der().as_slice(),
        "the CA key does not belong to the CA certificate; restore the pair from a backup"
    );
    // rcgen needs a Certificate as issuer handle; only its subject and key are used for signing.
    let certificate = params.self_signed(&key).context("the CA key does not match the CA certificate")?;
    Ok(Ca { certificate, key, cert_pem: cert_pem.to_owned() })
}

/// Subject alternative names of a service's server certificate: the container name, the
/// network alias, loopback in every spelling, and the profile's extra names.
pub fn server_sans(container_name: &str, alias: &str, extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> =
        vec![container_name.into(), alias.into(), "localhost".into(), "127.0.0.1".into(), "::1".into()];
    for name in extra {
        if !sans.contains(name) {
            sans.push(name.clone());
        }
    }
    sans
}

/// Issues one certificate under `ca`.
pub fn issue(ca: &Ca, algorithm: KeyAlgorithm, spec: &CertSpec) -> anyhow::Result<Issued> {
    let key = KeyPair::generate_for(signature_algorithm(algorithm))
        .with_context(|| format!("generating the key of {}", spec.common_name))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "hardstack");
    name.push(DnType::CommonName, spec.common_name.clone());
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    match &spec.purpose {
        Purpose::Server { sans } | Purpose::Peer { sans } => {
            params.extended_key_usages = match &spec.purpose {
                Purpose::Peer { .. } => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
                _ => vec![ExtendedKeyUsagePurpose::ServerAuth],
            };
            params.subject_alt_names = sans
                .iter()
                .map(|san| match san.parse::<IpAddr>() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) => san.clone().try_into().map(SanType::DnsName),
                })
                .collect::<Result<_, _>>()
                .with_context(|| format!("a subject alternative name of {}", spec.common_name))?;
        }
        Purpose::Client => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
    }
    validity(&mut params, spec.lifetime);
    let certificate = params
        .signed_by(&key, &ca.certificate, &ca.key)
        .with_context(|| format!("signing the certificate of {}", spec.common_name))?;
    Ok(Issued { cert_pem: certificate.pem(), key_pem: Secret::new(key.serialize_pem()) })
}

/// When a PEM certificate becomes valid, as seconds since the epoch.
pub fn not_before(cert_pem: &str) -> anyhow::Result<i64> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).context("not a PEM certificate")?;
    let cert = pem.parse_x509().context("not an X.509 certificate")?;
    Ok(cert.validity().not_before.timestamp())
}

/// When a PEM certificate expires, as seconds since the epoch.
pub fn not_after(cert_pem: &str) -> anyhow::Result<i64> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).context("not a PEM certificate")?;
    let cert = pem.parse_x509().context("not an X.509 certificate")?;
    Ok(cert.validity().not_after.timestamp())
}

/// The DNS names a certificate's subjectAltName carries.
pub fn dns_names(cert_pem: &str) -> anyhow::Result<Vec<String>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).context("not a PEM certificate")?;
    let cert = pem.parse_x509().context("not an X.509 certificate")?;
    let names = match cert.subject_alternative_name().context("reading its subjectAltName")? {
        Some(san) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn server_certificate_carries_every_san_and_server_auth() {
        let ca = create_ca("t", KeyAlgorithm::EcdsaP256, 10 * DAY).unwrap();
        let sans = server_sans("t-postgres", "postgres", &["db.example.com".into(), "10.0.0.5".into()]);
        let issued = issue(
            &ca,
            KeyAlgorithm::EcdsaP256,
            &CertSpec { common_name: "postgres".into(), purpose: Purpose::Server { sans }, lifetime: 2 * DAY },
        )
        .unwrap();
        let (_, pem) = parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        let names: Vec<String> = san
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string(),
                    _ => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap()).to_string(),
                },
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["t-postgres", "postgres", "localhost", "127.0.0.1", "::1", "db.example.com", "10.0.0.5"]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(lifetime, (2 * DAY).as_secs() as i64 + 300);
    }

    #[test]
    fn loaded_ca_issues_certificates_that_chain_to_the_original() {
        let ca = create_ca("t", KeyAlgorithm::EcdsaP384, 10 * DAY).unwrap();
        let reloaded = load_ca(&ca.cert_pem, &ca.key_pem()).unwrap();
        let issued = issue(
            &reloaded,
            KeyAlgorithm::EcdsaP384,
            &CertSpec { common_name: "app".into(), purpose: Purpose::Client, lifetime: DAY },
        )
        .unwrap();
        let (_, ca_pem) = parse_x509_pem(ca.cert_pem.as_bytes()).unwrap();
        let ca_cert = ca_pem.parse_x509().unwrap();
        let (_, pem) = parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).expect("signed by the original CA key");
        assert_eq!(cert.issuer(), ca_cert.subject());
    }

    #[test]
    fn a_mismatched_ca_key_is_an_error() {
        let one = create_ca("one", KeyAlgorithm::EcdsaP256, DAY).unwrap();
        let two = create_ca("two", KeyAlgorithm::EcdsaP256, DAY).unwrap();
        let err = load_ca(&one.cert_pem, &two.key_pem()).unwrap_err();
        assert!(format!("{err:#}").contains("does not belong to the CA certificate"), "{err:#}");
    }
}
