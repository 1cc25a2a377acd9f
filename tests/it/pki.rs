use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::*;

use crate::common::Sandbox;

fn der(pem: &[u8]) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).expect("a PEM certificate");
    pem.contents
}

fn verify(ca: &[u8], cert: &[u8], usage: KeyUsage) -> Result<(), webpki::Error> {
    let ca = CertificateDer::from(ca.to_vec());
    let anchor = webpki::anchor_from_trusted_cert(&ca)?;
    let cert = CertificateDer::from(cert.to_vec());
    let ee = EndEntityCert::try_from(&cert)?;
    ee.verify_for_usage(webpki::ALL_VERIFICATION_ALGS, &[anchor], &[], UnixTime::now(), usage, None, None).map(|_| ())
}

fn common_name(cert: &[u8]) -> String {
    let (_, parsed) = X509Certificate::from_der(cert).unwrap();
    parsed.subject().iter_common_name().next().unwrap().as_str().unwrap().to_owned()
}

fn lifetime(cert: &[u8]) -> Duration {
    let (_, parsed) = X509Certificate::from_der(cert).unwrap();
    Duration::from_secs((parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp()) as u64)
}

#[test]
fn server_certificates_chain_to_the_ca_and_cover_every_name() {
    let sandbox = Sandbox::new();
    sandbox.init(&["--set", r#"tls.extra_sans=["db.example.com", "10.1.2.3"]"#]);
    let ca = der(&sandbox.read("ca/ca.crt"));
    for service in ["postgres", "redis", "qdrant"] {
        let cert = der(&sandbox.read(&format!("certs/{service}/server.crt")));
        verify(&ca, &cert, KeyUsage::server_auth()).unwrap_or_else(|e| panic!("{service}: {e:?}"));
        // A server certificate is not a client certificate.
        assert!(verify(&ca, &cert, KeyUsage::client_auth()).is_err(), "{service} must not be valid for clientAuth");
        let ee_der = CertificateDer::from(cert.clone());
        let ee = EndEntityCert::try_from(&ee_der).unwrap();
        let container = format!("hardstack-dev-{service}");
        for name in [container.as_str(), service, "localhost", "127.0.0.1", "::1", "db.example.com", "10.1.2.3"] {
            let server_name = ServerName::try_from(name).unwrap();
            ee.verify_is_valid_for_subject_name(&server_name)
                .unwrap_or_else(|e| panic!("{service} must cover {name}: {e:?}"));
        }
        for name in ["example.com", "10.1.2.4", "redis.evil"] {
            assert!(
                ee.verify_is_valid_for_subject_name(&ServerName::try_from(name).unwrap()).is_err(),
                "{service} must not cover {name}"
            );
        }
        // 397 days from the dev profile, plus the 5 minutes hardstack backdates.
        assert_eq!(lifetime(&cert), Duration::from_secs(397 * 86_400 + 300));
    }
}

#[test]
fn client_certificates_carry_the_user_name_and_client_auth() {
    let sandbox = Sandbox::new();
    sandbox.init(&["--profile", "prod"]);
    let ca = der(&sandbox.read("ca/ca.crt"));
    for user in ["app", "admin", "health"] {
        let cert = der(&sandbox.read(&format!("certs/clients/{user}/client.crt")));
        verify(&ca, &cert, KeyUsage::client_auth()).unwrap_or_else(|e| panic!("{user}: {e:?}"));
        assert!(verify(&ca, &cert, KeyUsage::server_auth()).is_err(), "{user} must not be a server certificate");
        assert_eq!(common_name(&cert), user);
        assert_eq!(lifetime(&cert), Duration::from_secs(90 * 86_400 + 300));
    }
}

#[test]
fn certificates_of_another_stack_do_not_verify() {
    let one = Sandbox::new();
    one.init(&[]);
    let two = Sandbox::new();
    two.init(&[]);
    let cert = der(&two.read("certs/postgres/server.crt"));
    assert!(verify(&der(&one.read("ca/ca.crt")), &cert, KeyUsage::server_auth()).is_err());
}

#[test]
fn key_algorithm_follows_the_profile() {
    for (algorithm, oid) in [("ecdsa-p256", "1.2.840.10045.3.1.7"), ("ecdsa-p384", "1.3.132.0.34")] {
        let sandbox = Sandbox::new();
        sandbox.init(&["--set", &format!("tls.key_algorithm={algorithm}")]);
        let cert = der(&sandbox.read("certs/redis/server.crt"));
        let (_, parsed) = X509Certificate::from_der(&cert).unwrap();
        let params = parsed.public_key().algorithm.parameters.as_ref().unwrap();
        assert_eq!(params.as_oid().unwrap().to_id_string(), oid, "{algorithm}");
        verify(&der(&sandbox.read("ca/ca.crt")), &cert, KeyUsage::server_auth()).unwrap();
    }
    let sandbox = Sandbox::new();
    sandbox.init(&["--set", "tls.key_algorithm=ed25519"]);
    let cert = der(&sandbox.read("certs/redis/server.crt"));
    let (_, parsed) = X509Certificate::from_der(&cert).unwrap();
    assert_eq!(parsed.public_key().algorithm.algorithm.to_id_string(), "1.3.101.112");
    verify(&der(&sandbox.read("ca/ca.crt")), &cert, KeyUsage::server_auth()).unwrap();
}

#[test]
fn ca_is_a_constrained_certificate_authority() {
    let sandbox = Sandbox::new();
    sandbox.init(&[]);
    let ca = der(&sandbox.read("ca/ca.crt"));
    let (_, parsed) = X509Certificate::from_der(&ca).unwrap();
    let constraints = parsed.basic_constraints().unwrap().unwrap().value;
    assert!(constraints.ca);
    assert_eq!(constraints.path_len_constraint, Some(0));
    let usage = parsed.key_usage().unwrap().unwrap().value;
    assert!(usage.key_cert_sign() && usage.crl_sign());
}
